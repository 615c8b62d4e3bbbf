// The data plane on the pod backend, on the real node: the operator injects
// the agent into the Pod (init container copy, postStart --daemon, the
// credential's digest from the sandbox's Secret), and the SDK and the kubectl
// plugin reach it through the API server's pods/portforward, as a person
// holding a kubeconfig would.
//
// The operator image must carry the agent of this tree: `make images` builds
// it (SANDBOX_NODE_OPERATOR_IMAGE names another build of it, e.g. one made
// for a branch without retagging the shared one).
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { PermissionDeniedError, UnauthorizedError } from "../../src/dataplane/errors.js";
import { podAgentEndpoint } from "../../src/dataplane/pod.js";
import { buildAgent, SCRATCH_IMAGE } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import type { ContainerdPaths } from "../support/node/containerd.js";
import { importDockerImages, localTagOf } from "../support/node/images.js";
import { inNode, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { runUnderPty } from "../support/pty.js";

const kc = kubeConfig();
const IMAGE = process.env.SANDBOX_NODE_OPERATOR_IMAGE ?? OPERATOR_IMAGE;
const SDK_DIR = join(REPO_ROOT, "packages/sdk");
const CLI = join(SDK_DIR, "src/cli/main.ts");
let ns: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator;

beforeAll(async () => {
  buildAgent();
  // The shell-less stand-in (agent/internal/testworkload), built by the docker
  // tests or `make images`; and the operator image under test.
  importDockerImages(inject("nodeContainerd") as ContainerdPaths, [IMAGE, SCRATCH_IMAGE]);
  ns = await testNamespace(kc, "agent");
  operator = await startOperator({ namespace: ns.name, user: "operator-1", egressImage: IMAGE });
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const sdk = () => ({ kubeconfig: kc, namespace: ns.name });
const spec = (over: Record<string, unknown> = {}) => ({
  image: NODE_SANDBOX_IMAGE,
  command: ["sleep", "3600"],
  resources: NODE_TEST_RESOURCES,
  ...over,
});

/** The kubectl plugin, as a child process (the operator runs in this one and must keep going). */
const cli = (args: string[], input = "") =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      "npx",
      ["tsx", CLI, `--kubeconfig=${inject("kubeconfigPath")}`, `-n=${ns.name}`, ...args],
      { cwd: REPO_ROOT },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });

describe("the data plane on the pod backend", { timeout: 180_000 }, () => {
  let box: Sandbox;
  let other: Sandbox;

  beforeAll(async () => {
    [box, other] = await Promise.all([
      Sandbox.create(spec({ ports: [{ name: "http", port: 8000 }] }), { ...sdk(), name: "box" }),
      Sandbox.create(spec({ security: { readOnlyRootFilesystem: true } }), {
        ...sdk(),
        name: "other",
      }),
    ]);
  }, 240_000);

  it("runs commands: exit codes, signals, stdout and stderr apart, stdin", async () => {
    expect(await box.exec(["true"])).toMatchObject({ exitCode: 0, stdout: "", stderr: "" });
    expect(await box.exec("echo out; echo err >&2; exit 3")).toMatchObject({
      exitCode: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
    const killed = await box.exec("kill -TERM $$");
    expect(killed).toMatchObject({ exitCode: null, signal: "SIGTERM" });
    expect(await box.exec(["wc", "-c"], { stdin: "12345" })).toMatchObject({ stdout: "5\n" });
    // As the workload: its user, its working directory, its environment (the egress proxy).
    expect((await box.exec(["id", "-u"])).stdout).toBe("1000\n");
    expect((await box.exec(["pwd"])).stdout).toBe("/workspace\n");
    expect((await box.exec(["sh", "-c", "echo $HTTPS_PROXY"])).stdout).toBe(
      "http://127.0.0.1:15001\n",
    );
  });

  it("a timeout kills the whole process tree", async () => {
    const r = await box.exec("sleep 4711 & sleep 4712; echo never", { timeoutMs: 500 });
    expect(r).toMatchObject({ timedOut: true, signal: "SIGKILL", stdout: "" });
    await eventually(async () => {
      const ps = await box.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '");
      expect(ps.stdout).not.toContain("sleep 471");
    });
  });

  it("100 concurrent execs on one sandbox", async () => {
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => box.exec(["echo", String(i)])),
    );
    console.log(
      `100 concurrent execs through pods/portforward: ${Math.round(performance.now() - t0)} ms`,
    );
    results.forEach((r, i) => {
      expect(r).toMatchObject({ exitCode: 0, stdout: `${i}\n` });
    });
  });

  it("a background process outlives the client that started it", async () => {
    const p = await box.spawn("sleep 2; echo finished");
    box.close(); // every connection of this client goes
    const again = await Sandbox.get("box", sdk());
    const list = await again.processes();
    expect(list.find((x) => x.id === p.id)?.running).toBe(true);
    const same = await again.process(p.id);
    expect(await same.wait(30_000)).toMatchObject({ running: false, exit: { exitCode: 0 } });
    expect((await same.output()).stdout).toBe("finished\n");
    box = again;
  });

  it("a 50 MB random file round trip, checksum intact", async () => {
    const data = randomBytes(50 * 2 ** 20);
    const sum = createHash("sha256").update(data).digest("hex");
    const t0 = performance.now();
    await box.files.write("/workspace/random.bin", Readable.from([data]));
    const t1 = performance.now();
    const back = await box.files.read("/workspace/random.bin");
    const t2 = performance.now();
    console.log(
      `50 MB through pods/portforward: write ${Math.round(50 / ((t1 - t0) / 1000))} MB/s, read ${Math.round(50 / ((t2 - t1) / 1000))} MB/s`,
    );
    expect(createHash("sha256").update(back).digest("hex")).toBe(sum);
    expect((await box.exec(["sha256sum", "/workspace/random.bin"])).stdout.split(" ")[0]).toBe(sum);
  });

  it("unicode and space-containing paths", async () => {
    const path = "/workspace/dír with space/ünï côde ✓.txt";
    await box.files.write(path, "ok ✓", { parents: true });
    expect(await box.files.readText(path)).toBe("ok ✓");
    expect((await box.files.list("/workspace/dír with space")).map((e) => e.name)).toEqual([
      "ünï côde ✓.txt",
    ]);
    expect((await box.exec(["cat", path])).stdout).toBe("ok ✓");
  });

  it("permission denied and read-only paths are the kernel's refusal, by name", async () => {
    const denied = await box.files.write("/etc/passwd", "x").catch((e) => e);
    expect(denied).toBeInstanceOf(PermissionDeniedError);
    expect(denied.code).toBe("EACCES");
    // Read-only root file system: writable /tmp and working directory, nothing else.
    const rofs = await other.files.write("/usr/x", "x").catch((e) => e);
    expect(rofs).toBeInstanceOf(PermissionDeniedError);
    expect(rofs.code).toBe("EROFS");
    await other.files.write("/tmp/x", "fine");
    await other.files.write("/workspace/x", "fine");
    // The agent's own files are read-only to the workload.
    const bin = await other.exec(["sh", "-c", "echo > /.sandbox/sandbox-agent"]);
    expect(bin.exitCode).not.toBe(0);
  });

  it("refuses a request without the credential and with another sandbox's", async () => {
    const ref = (name: string) => ({ namespace: ns.name, name });
    const [a, b] = await Promise.all([
      podAgentEndpoint(kc, ref("box")),
      podAgentEndpoint(kc, ref("other")),
    ]);
    try {
      expect(a.endpoint.token).not.toBe(b.endpoint.token);
      for (const token of ["", b.endpoint.token]) {
        const c = new AgentClient({ ...a.endpoint, token });
        await expect(c.exec(["true"])).rejects.toBeInstanceOf(UnauthorizedError);
        await expect(c.readFile("/etc/hostname")).rejects.toBeInstanceOf(UnauthorizedError);
        c.close();
      }
      // Only the digest is in the Pod: it opens nothing either.
      const digest = (await box.exec(["cat", "/.sandbox-credential/token.sha256"])).stdout.trim();
      expect(digest).toBe(createHash("sha256").update(a.endpoint.token).digest("hex"));
      const withDigest = new AgentClient({ ...a.endpoint, token: digest });
      await expect(withDigest.exec(["true"])).rejects.toBeInstanceOf(UnauthorizedError);
      withDigest.close();
      // The token itself is nowhere in the sandbox's file system or environment.
      const grep = await box.exec([
        "sh",
        "-c",
        `grep -rlsF -- '${a.endpoint.token}' /.sandbox-credential /proc/self/environ /workspace /tmp; true`,
      ]);
      expect(grep.stdout).toBe("");
    } finally {
      a.forwarder.close();
      b.forwarder.close();
    }
  });

  it("the agent's port is on the Pod's loopback only: nothing reaches it from the network", async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pod = await core.readNamespacedPod({ name: "box", namespace: ns.name });
    const ip = pod.status!.podIP!;
    // From the node itself (which a NetworkPolicy would not even fence).
    const probe = await inNode("bash", ["-c", `timeout 3 bash -c 'echo > /dev/tcp/${ip}/15099'`]);
    expect(probe.code).not.toBe(0);
    const tcp = (await box.exec(["cat", "/proc/net/tcp"])).stdout;
    // 127.0.0.1:15099 (0100007F:3AFB) listening (0A); no wildcard listener on the port.
    expect(tcp).toMatch(/0100007F:3AFB 00000000:0000 0A/);
    expect(tcp).not.toMatch(/00000000:3AFB 00000000:0000 0A/);
  });

  it("reaches a declared port through port-forward (connect, fetch)", async () => {
    const server = await box.spawn([
      "python3",
      "-m",
      "http.server",
      "8000",
      "--directory",
      "/workspace/dír with space",
    ]);
    const res = await eventually(
      () => box.fetch(8000, "/%C3%BCn%C3%AF%20c%C3%B4de%20%E2%9C%93.txt"),
      {
        timeout: 20_000,
      },
    );
    expect(await res.text()).toBe("ok ✓");
    await server.kill();
  });

  it("logs from pods/log: tail, since, follow", async () => {
    const chatty = await Sandbox.create(
      spec({ command: ["sh", "-c", "for i in 1 2 3; do echo line $i; done; sleep 3600"] }),
      { ...sdk(), name: "chatty" },
    );
    const text = async (o: Parameters<Sandbox["logs"]>[0]) => {
      const l = await chatty.logs(o);
      return (await l.stdout.toArray()).join("");
    };
    expect(await text({})).toBe("line 1\nline 2\nline 3\n");
    expect(await text({ tail: 1 })).toBe("line 3\n");
    expect(await text({ since: Math.floor(Date.now() / 1000) + 60 })).toBe("");
    const follow = await chatty.logs({ follow: true });
    let got = "";
    follow.stdout.on("data", (c) => {
      got += c;
    });
    await eventually(() => expect(got).toBe("line 1\nline 2\nline 3\n"));
    follow.close();
    await chatty.delete();
  });

  it("a Sandbox without command runs its image's entrypoint, with the data plane beside it", async () => {
    const plain = await Sandbox.create(
      { image: localTagOf(SCRATCH_IMAGE), resources: NODE_TEST_RESOURCES },
      { ...sdk(), name: "plain" },
    );
    // The image's ENTRYPOINT is PID 1 of the container: nothing wraps it.
    const cmdline = (await plain.files.read("/proc/1/cmdline")).toString().split("\0");
    expect(cmdline[0]).toBe("/workload");
    expect((await plain.exec(["/workload", "echo", "shell-less"])).stdout).toBe("shell-less\n");
    const logs = await plain.logs();
    expect((await logs.stdout.toArray()).join("")).toMatch(/^workload started as pid 1\n/);
    await plain.delete();
  });

  it("kubectl sandbox run --image … -- python3 -c 'print(1+1)' prints 2", async () => {
    const r = await cli([
      "run",
      "--image",
      NODE_SANDBOX_IMAGE,
      "--name",
      "run1",
      "--",
      "python3",
      "-c",
      "print(1+1)",
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("2\n");
    expect(r.status).toBe(0);
    const failed = await cli([
      "run",
      "--image",
      NODE_SANDBOX_IMAGE,
      "--name",
      "run2",
      "--",
      "sh",
      "-c",
      "echo bad >&2; exit 3",
    ]);
    expect(failed.stdout + failed.stderr).toBe("bad\n");
    expect(failed.status).toBe(3);
  });

  it("kubectl sandbox exec, and exec -it under a pseudo-terminal", async () => {
    const e = await cli(["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 4"]);
    expect(e).toMatchObject({ stdout: "out\n", stderr: "err\n", status: 4 });
    const r = await runUnderPty(
      [
        "npx",
        "tsx",
        CLI,
        `--kubeconfig=${inject("kubeconfigPath")}`,
        `-n=${ns.name}`,
        "exec",
        "-it",
        "box",
        "--",
        "sh",
        "-c",
        "tty; stty size; read x; echo got=$x; exit 6",
      ],
      { cwd: REPO_ROOT, timeoutMs: 120_000 },
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(r.stdout).toContain("got=hello");
    expect(r.status).toBe(6);
  });

  it("the credential goes with the Sandbox", async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await other.delete();
    await eventually(
      async () => {
        const gone = await core
          .readNamespacedSecret({ name: "other-sandbox-agent", namespace: ns.name })
          .catch((e) => e);
        expect(gone.code).toBe(404);
      },
      { timeout: 60_000 },
    );
    box.close();
  });
});
