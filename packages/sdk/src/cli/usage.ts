// Help texts of `kubectl sandbox`, one per command.
export const GLOBAL_FLAGS = `Global flags:
  --kubeconfig PATH   kubeconfig file (default: KUBECONFIG, ~/.kube/config)
  -n, --namespace NS  namespace (default: the context's, else "default")
  -h, --help          this help`;

export const USAGE: Record<string, string> = {
  "": `kubectl sandbox: run and use sandbox-operator sandboxes

Usage: kubectl sandbox COMMAND [flags]

Commands:
  run           create a sandbox running a command (or claim one: --template), stream its output
  claim         claim a sandbox from a template (a warm pool's when it has one), print its name
  exec          run a command in a sandbox (-i stdin, -t terminal)
  cp            copy files and directories to or from a sandbox (NAME:PATH)
  logs          the workload's output (-f to follow)
  port-forward  forward a local port to a sandbox's declared port
  ls            list sandboxes
  rm            delete sandboxes
  renew         extend a sandbox's lifetime
  suspend       stop a sandbox's workload, keeping its workspace and identity
  resume        run a suspended sandbox again

${GLOBAL_FLAGS}

Run 'kubectl sandbox COMMAND --help' for a command's flags.`,
  run: `Usage: kubectl sandbox run --image IMAGE [flags] [-- COMMAND [ARG...]]
       kubectl sandbox run -f sandbox.yaml [flags]
       kubectl sandbox run --template TEMPLATE [--pool POOL] [flags] -- COMMAND [ARG...]

Creates a sandbox whose workload is COMMAND (the image's entrypoint when
absent), streams its output, and exits with its exit code. The sandbox is
deleted afterwards unless --keep (like docker run --rm).

With --template, the sandbox comes from a SandboxClaim instead (a warm pool's
ready sandbox when there is one, else a cold start): the template's workload
is already running, COMMAND runs in it through the agent, and the claim (with
its sandbox) is deleted afterwards unless --keep.

Flags:
  --image IMAGE       container image
  -f, --file PATH     a Sandbox manifest (YAML or JSON) or just its spec
  --template T        claim a sandbox of SandboxTemplate T (not with --image/-f/-p/--backend)
  --pool P            with --template: take it from SandboxWarmPool P (default: any pool of T)
  --name NAME         sandbox name (with --template: the claim's) (default: generated)
  -e, --env K=V       environment variable (repeatable; with --template: COMMAND's)
  -p, --port N        declare a port (repeatable)
  --ttl SECONDS       lifetime (default 3600; with --template: the template's)
  --backend B         pod or docker (default: the operator's)
  --allow TARGET      allow egress to a host, *.domain or CIDR (repeatable; default deny;
                      with --template and no --allow: the template's policy)
  --keep              keep the sandbox after the command ends
  --timeout SECONDS   how long to wait for it to start (default 300)

${GLOBAL_FLAGS}`,
  claim: `Usage: kubectl sandbox claim --template TEMPLATE [flags]

Claims a sandbox from SandboxTemplate TEMPLATE through a SandboxClaim: a warm
pool's ready sandbox when there is one (its egress policy applied live), else
a cold start. Waits until the claim is Ready (its policy in force) and the
agent answers, then prints the sandbox's name on stdout and how it was served
(Warm or Cold, and why) on stderr. 'kubectl sandbox rm NAME' deletes the claim
and its sandbox. A claim that fails or times out is deleted (exit code 1).

Flags:
  --template T        the SandboxTemplate (required)
  --pool P            take it from SandboxWarmPool P (default: any pool of T)
  --allow TARGET      allow egress to a host, *.domain or CIDR (repeatable; the claim's
                      policy: default deny plus these; absent: the template's policy)
  --ttl SECONDS       lifetime counted from the claim (default: the template's)
  -e, --env K=V       environment variable (repeatable; a running workload cannot take
                      new variables: the claim is served cold)
  --name NAME         the claim's name (a cold sandbox takes it too) (default: generated)
  --timeout SECONDS   how long to wait for it (default 300)

${GLOBAL_FLAGS}`,
  exec: `Usage: kubectl sandbox exec [-i] [-t] NAME -- COMMAND [ARG...]

Runs COMMAND in the sandbox through its agent and exits with its exit code
(128+N when killed by signal N).

Flags:
  -i, --stdin         pass stdin to the command
  -t, --tty           run on a terminal (interactive use: with -i)
  -e, --env K=V       environment variable (repeatable)
  -w, --workdir DIR   working directory
  --timeout SECONDS   kill the command after this long

${GLOBAL_FLAGS}`,
  cp: `Usage: kubectl sandbox cp SRC DST

One of SRC and DST is NAME:PATH (in the sandbox), the other a local path.
Files and directories both ways; a directory is copied recursively.

${GLOBAL_FLAGS}`,
  logs: `Usage: kubectl sandbox logs [-f] [--since TIME] [--tail N] NAME

The workload's stdout and stderr as the runtime recorded them.

Flags:
  -f, --follow        keep streaming
  --since TIME        from this time (RFC 3339) or this long ago (e.g. 10m, 30s)
  --tail N            only the last N lines

${GLOBAL_FLAGS}`,
  "port-forward": `Usage: kubectl sandbox port-forward NAME [LOCAL_PORT:]PORT

Listens on 127.0.0.1:LOCAL_PORT (default: PORT) and forwards each connection
to the sandbox's declared PORT. Ctrl-C stops.

${GLOBAL_FLAGS}`,
  ls: `Usage: kubectl sandbox ls [-l SELECTOR]

Lists sandboxes: name, phase, backend, ready, expiry, age.

Flags:
  -l, --selector S    label selector

${GLOBAL_FLAGS}`,
  rm: `Usage: kubectl sandbox rm NAME [NAME...]

Deletes sandboxes; a claimed sandbox goes with its claim (the claim is deleted).

${GLOBAL_FLAGS}`,
  renew: `Usage: kubectl sandbox renew NAME --ttl SECONDS

Makes the sandbox expire SECONDS from now.

${GLOBAL_FLAGS}`,
  suspend: `Usage: kubectl sandbox suspend NAME [NAME...]

Suspends sandboxes (spec.suspended: true): the workload stops and its compute
is released; the workspace, name and credential stay, and the lifetime keeps
counting. It stays suspended until 'kubectl sandbox resume' (a call does not
wake it; only sandboxes the operator suspended for idleness resume on use).

${GLOBAL_FLAGS}`,
  resume: `Usage: kubectl sandbox resume NAME [NAME...] [--timeout SECONDS]

Resumes suspended sandboxes (by a person or for idleness) and waits until each
is Ready and its agent answers.

Flags:
  --timeout SECONDS   how long to wait for each (default 120; 0: do not wait)

${GLOBAL_FLAGS}`,
};
