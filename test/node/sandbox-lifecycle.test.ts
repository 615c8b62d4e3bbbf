// The pod backend's sandboxes on the real node: the Pod the operator builds
// really runs (egress-init, the egress sidecar, the workload), and its exit,
// OOM kill, image-pull failure, filesystem and deletion show up in the
// Sandbox as a user would see them. kubectl logs and exec go through the
// apiserver to the kubelet.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { kubectl, NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
const STALL_TIMEOUT = 10;

beforeAll(async () => {
  ns = await testNamespace(kc, "life");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    egressImage: OPERATOR_IMAGE,
    stallTimeoutSeconds: STALL_TIMEOUT,
  });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const run = (command: string) => ({
  image: NODE_SANDBOX_IMAGE,
  command: ["sh", "-c", command],
  resources: NODE_TEST_RESOURCES,
});

describe("pod backend on a real node", () => {
  it("exit 0 -> Succeeded, with the workload's output in kubectl logs", async () => {
    await sbx.create("ok", run("echo out of the sandbox; exit 0"));
    const s = await sbx.waitFor("ok", (s) => expect(s.status?.phase).toBe("Succeeded"), 90_000);
    expect(s.status?.exitCode).toBe(0);
    const logs = await kubectl(["logs", "-n", ns.name, "ok", "-c", "sandbox"]);
    expect(logs.stdout).toBe("out of the sandbox\n");
  });

  it("exit 3 -> Failed with exit code 3", async () => {
    await sbx.create("three", run("echo failing >&2; exit 3"));
    const s = await sbx.waitFor("three", (s) => expect(s.status?.phase).toBe("Failed"), 90_000);
    expect(s.status?.exitCode).toBe(3);
    expect(s.status?.message ?? "").toContain("3");
  });

  it("a workload over its memory limit is OOMKilled", async () => {
    await sbx.create("oom", {
      ...run("python3 -c 'b = bytearray(512 * 2**20); print(len(b))'"),
      resources: { cpu: "500m", memory: "64Mi" },
    });
    const s = await sbx.waitFor("oom", (s) => expect(s.status?.phase).toBe("Failed"), 90_000);
    expect(s.status?.reason).toBe(ConditionReason.OOMKilled);
    expect(s.status?.exitCode).toBe(137);
  });

  it("an image that does not exist: ImagePullBackOff, then Failed after the stall timeout", async () => {
    await sbx.create("noimage", {
      image: "registry.invalid/nope/missing:1",
      command: ["true"],
      resources: NODE_TEST_RESOURCES,
    });
    const stalled = await sbx.waitFor(
      "noimage",
      (s) =>
        expect(condition(s, ConditionType.Stalled)?.reason).toMatch(
          /^(ImagePullBackOff|ErrImagePull)$/,
        ),
      60_000,
    );
    expect(stalled.status?.phase).not.toBe("Failed");
    const failed = await sbx.waitFor(
      "noimage",
      (s) => expect(s.status?.phase).toBe("Failed"),
      60_000,
    );
    const since = Date.parse(condition(stalled, ConditionType.Stalled)!.lastTransitionTime!);
    // Observed (polled every 100 ms) no sooner than the stall timeout after the stall began
    // (condition times have second resolution).
    expect(Date.now() - since).toBeGreaterThanOrEqual((STALL_TIMEOUT - 1) * 1000);
    expect(JSON.stringify(failed.status)).toMatch(/ImagePull/);
  });

  it("read-only root filesystem; /tmp and the working directory are writable", async () => {
    await sbx.create("fs", {
      ...run(
        "touch /tmp/t && echo tmp-ok; touch ./w && echo workdir-ok; pwd; touch /etc/x 2>&1 || echo root-refused; touch /home/sandbox/x 2>&1 || echo home-refused",
      ),
      security: { readOnlyRootFilesystem: true },
    });
    await sbx.waitFor("fs", (s) => expect(s.status?.phase).toBe("Succeeded"), 90_000);
    const logs = (await kubectl(["logs", "-n", ns.name, "fs", "-c", "sandbox"])).stdout;
    expect(logs).toContain("tmp-ok\nworkdir-ok\n/workspace\n");
    expect(logs).toContain("Read-only file system");
    expect(logs).toContain("root-refused");
    expect(logs).toContain("home-refused");
  });

  it("kubectl exec runs in the sandbox with no capabilities; deleting the Sandbox removes the Pod", async () => {
    await sbx.create("shell", run("sleep 3600"));
    await sbx.waitFor(
      "shell",
      (s) => {
        isReady(s);
        expect(s.status?.phase).toBe("Running");
      },
      90_000,
    );
    const status = await kubectl([
      "exec",
      "-n",
      ns.name,
      "shell",
      "-c",
      "sandbox",
      "--",
      "grep",
      "-E",
      "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):",
      "/proc/self/status",
    ]);
    expect(status.stdout).toMatch(/CapEff:\s+0000000000000000/);
    expect(status.stdout).toMatch(/CapPrm:\s+0000000000000000/);
    expect(status.stdout).toMatch(/CapBnd:\s+0000000000000000/);
    expect(status.stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(status.stdout).toMatch(/Seccomp:\s+2/);
    const id = await kubectl(["exec", "-n", ns.name, "shell", "-c", "sandbox", "--", "id"]);
    expect(id.stdout).toMatch(/^uid=1000\b/);

    await sbx.delete("shell");
    await eventually(async () => expect(await sbx.pod("shell")).toBeUndefined(), {
      timeout: 60_000,
      interval: 500,
    });
    await sbx.waitGone("shell", 30_000);
  });
});
