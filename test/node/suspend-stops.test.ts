// Suspended means stopped, on the pod backend on the real node: once a
// Sandbox reports phase Suspended, its workload no longer runs, so nothing it
// does reaches the workspace afterwards, and a resume never has the old and
// the new workload writing to the same PVC at once.
//
// The workload appends "<incarnation id> <time in ns>" to the workspace ten
// times a second. As PID 1 without a handler it ignores SIGTERM, like many
// agents' shells: it stops only when killed. The test notes when it first
// saw phase Suspended, resumes, and reads the file: no line of the first
// incarnation may be later than that.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { NODE_SANDBOX_IMAGE, NODE_TEST_RESOURCES } from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator | undefined;

beforeAll(async () => {
  ns = await testNamespace(kc, "susstop");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    egressImage: OPERATOR_IMAGE,
  });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const TICK =
  "id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' '); " +
  'while :; do echo "$id $(date +%s%N)" >> /workspace/ticks; sleep 0.1; done';

describe("suspension on the pod backend (real node)", () => {
  it("once the Sandbox reports Suspended, its workload has stopped: nothing it writes comes later", async () => {
    const box = await Sandbox.create(
      {
        image: NODE_SANDBOX_IMAGE,
        command: ["sh", "-c", TICK],
        resources: NODE_TEST_RESOURCES,
        workspace: { volume: { size: "64Mi" } },
      },
      { kubeconfig: kc, namespace: ns.name, name: "ticker" },
    );
    try {
      const first = await eventually(
        async () => {
          const r = await box.exec(["sh", "-c", "head -n 1 /workspace/ticks"]);
          const id = r.stdout.split(" ")[0];
          expect(id).toMatch(/^[0-9a-f]{8}$/);
          return id!;
        },
        { timeout: 10_000 },
      );

      await sbx.patchSpec("ticker", { suspended: true });
      const seenSuspendedMs = await eventually(
        async () => {
          const s = await sbx.get("ticker");
          expect(s?.status?.phase).toBe("Suspended");
          return Date.now();
        },
        { timeout: 60_000, interval: 50 },
      );

      await box.resume({ timeoutMs: 120_000 });
      const lines = (await box.exec(["cat", "/workspace/ticks"])).stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ") as [string, string]);
      // Nanoseconds to milliseconds: a double holds today's ms with µs to spare.
      const before = lines.filter(([id]) => id === first).map(([, t]) => Number(t) / 1e6);
      expect(before.length).toBeGreaterThan(0);
      const lateMs = Math.round(Math.max(...before) - seenSuspendedMs);
      expect(
        lateMs,
        `the first workload wrote ${lateMs} ms after the Sandbox was seen Suspended`,
      ).toBeLessThanOrEqual(0);
      // The resumed workload writes to the same file: the workspace came back.
      expect(lines.some(([id]) => id !== first)).toBe(true);
    } finally {
      box.close();
    }
  }, 300_000);
});
