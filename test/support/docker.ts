// The real Docker engine for tests: started when absent (hack/docker/ensure-dockerd.sh),
// driven through the docker CLI so what a test does is what a person would type.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import Docker from "dockerode";
import { identityOf, Role, resourceName } from "../../src/backends/docker/names.js";
import { REPO_ROOT } from "./paths.js";
import { type Ran, runCommand } from "./run-command.js";
import type { StoredSandbox } from "./sandboxes.js";

const exec = promisify(execFile);

/**
 * The images `make images` builds (make test builds them first).
 * SANDBOX_OPERATOR_IMAGE names another build of the operator image (e.g. one
 * made with OPERATOR_IMAGE=... hack/images/build-all.sh operator from a branch).
 */
export const OPERATOR_IMAGE = process.env.SANDBOX_OPERATOR_IMAGE ?? "sandbox-operator:0.1.0";
export const SANDBOX_IMAGE = "sandbox-operator/sandbox-basic:latest";

export async function ensureDockerd(): Promise<Docker> {
  const { stdout } = await exec("bash", [join(REPO_ROOT, "hack/docker/ensure-dockerd.sh")], {
    timeout: 600_000,
  });
  const host = stdout.trim();
  return new Docker({ socketPath: host.replace(/^unix:\/\//, "") });
}

export type { Ran };

/** `docker ARGS...`; never throws on a non-zero exit. */
export function docker(args: string[], timeoutMs = 60_000): Promise<Ran> {
  return runCommand("docker", args, timeoutMs);
}

/** Names of containers, networks or volumes carrying `label`. */
export async function labelled(
  kind: "container" | "network" | "volume",
  label: string,
): Promise<string[]> {
  const args =
    kind === "container"
      ? ["ps", "-a", "--filter", `label=${label}`, "--format", "{{.Names}}"]
      : [kind, "ls", "--filter", `label=${label}`, "--format", "{{.Name}}"];
  const r = await docker(args);
  return r.stdout.split("\n").filter(Boolean).sort();
}

/**
 * Removes every container (with its anonymous volumes), network and volume
 * labelled as owned by `owner`: whatever a test file's sandboxes left.
 */
export async function removeOwnedBy(owner: string): Promise<void> {
  for (const kind of ["container", "network", "volume"] as const) {
    for (const name of await labelled(kind, `sandboxing.dev/owner=${owner}`)) {
      await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
    }
  }
}

/** Stop the local dockerd (SIGTERM, as an upgrade or a service restart would) and wait for it to exit. */
export async function stopDockerd(timeoutMs = 60_000): Promise<void> {
  const { readFileSync } = await import("node:fs");
  const pid = Number(readFileSync("/var/run/docker.pid", "utf8").trim());
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`dockerd (pid ${pid}) did not exit`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function liveRestoreEnabled(): Promise<boolean> {
  const r = await docker(["info", "--format", "{{.LiveRestoreEnabled}}"]);
  return r.stdout.trim() === "true";
}

/** The containers and network the docker backend names after a stored Sandbox. */
export function containerNames(s: StoredSandbox) {
  const id = identityOf(s as Parameters<typeof identityOf>[0]);
  return {
    workload: resourceName(id, Role.workload),
    sidecar: resourceName(id, Role.sidecar),
    network: resourceName(id, Role.network),
  };
}

/** The egress attack script the network-namespace suites run, shared with the docker ones. */
export const ESCAPE_PY = join(REPO_ROOT, "test/egress/support/escape.py");

/**
 * escape.py in a workload container, as the workload's own user (UID 1000, no
 * capabilities): the script is piped in, since the image does not carry it.
 * Returns the JSON verdict the script prints last.
 */
export async function escapeInWorkload(
  container: string,
  args: string[],
): Promise<Record<string, unknown>> {
  const script = readFileSync(ESCAPE_PY).toString("base64");
  const r = await docker(
    [
      "exec",
      container,
      "sh",
      "-c",
      `echo ${script} | base64 -d > /tmp/escape.py && python3 /tmp/escape.py "$@"`,
      "escape",
      ...args,
    ],
    90_000,
  );
  if (r.code !== 0) throw new Error(`escape.py ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}
