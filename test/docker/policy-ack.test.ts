// The docker sidecar's policy acknowledgement, against the real dockerd and
// control plane: a sandbox reports Ready for a policy only once its sidecar
// says it applied that policy file (a frozen sidecar holds a narrowed
// policy's Ready back, with the waiting reason, until it runs again), the
// first connection after Ready is judged by the new policy, and the workload,
// which shares the sidecar's network namespace, can neither see nor forge the
// acknowledgement (it lives in the sidecar's mounts only).
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import type { EgressPolicy } from "../../src/api/sandbox-spec.js";
import { POLICY_ACK_FILE } from "../../src/egress/contract.js";
import { parsePolicyAck, policyFileDigest } from "../../src/egress/policy-ack.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  containerNames,
  docker,
  ensureDockerd,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-ack-${process.pid}`;
/** startDockerOperator's --docker-policy-dir. */
const POLICY_DIR = `/run/sandbox-operator-test/${OWNER}/policies`;
const NAME = "acked";
const BROAD: EgressPolicy = {
  defaultAction: "deny",
  rules: [{ action: "allow", target: "allowed.test", ports: [80] }],
};

let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let internet: DockerInternet;
let operator: RunningOperator | undefined;
let sandbox: StoredSandbox;

const policyFile = (s: StoredSandbox) => join(POLICY_DIR, s.metadata.uid!, "policy.json");
const ackFile = (s: StoredSandbox) => join(POLICY_DIR, "applied", s.metadata.uid!);
const ack = (s: StoredSandbox) => parsePolicyAck(readFileSync(ackFile(s), "utf8"));

beforeAll(async () => {
  engine = await ensureDockerd();
  internet = await startDockerInternet({ "allowed.test": { A: [INET.allowed] } });
  ns = await testNamespace(kc, "ack");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startDockerOperator({
    namespace: ns.name,
    user: "operator-3",
    engine,
    owner: OWNER,
    upstreamDns: INET.dns,
  });
  await sbx.create(NAME, {
    image: SANDBOX_IMAGE,
    command: ["sleep", "3600"],
    network: { egress: BROAD },
  });
  sandbox = await sbx.waitFor(NAME, isReady, 120_000);
}, 600_000);

afterAll(async () => {
  await docker(["unpause", containerNames(sandbox).sidecar]).catch(() => undefined);
  await operator?.stop();
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

/** Python in the workload: "status N" when the origin answered, "refused ..." otherwise. */
async function fetchAllowed(): Promise<string> {
  const code = `import urllib.request\ntry:\n  r=urllib.request.urlopen('http://allowed.test/',timeout=5);print('status',r.status)\nexcept Exception as e:\n  print('refused',type(e).__name__)`;
  const r = await docker(["exec", containerNames(sandbox).workload, "python3", "-c", code], 60_000);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

const connections = () =>
  internet.servers.lines.filter((l) => l.event === "connection" && l.local === INET.allowed).length;

describe("docker backend: Ready means the sidecar applied the policy", () => {
  it("the sidecar acknowledged the very bytes of the policy file the status reports", () => {
    const record = ack(sandbox);
    expect(record).toEqual({
      sha256: policyFileDigest(readFileSync(policyFile(sandbox))),
      applied: true,
    });
    expect(condition(sandbox, ConditionType.EgressReady)).toMatchObject({
      status: "True",
      reason: ConditionReason.EgressEnforced,
      message: expect.stringContaining("acknowledged the policy of generation 1"),
    });
  });

  it("a narrowed policy is not Ready while the sidecar cannot apply it, and is in force once Ready", async () => {
    const { sidecar } = containerNames(sandbox);
    expect(await fetchAllowed()).toBe("status 200");
    const before = ack(sandbox);

    // Frozen: it cannot reload the file (nor serve: the workload's traffic waits too).
    expect((await docker(["pause", sidecar])).code).toBe(0);
    let unpaused = false;
    try {
      // A merge patch replaces the rules (an array) and keeps defaultAction: deny, nothing allowed.
      const patched = await sbx.patchSpec(NAME, { network: { egress: { rules: [] } } });
      const gen = patched.metadata.generation!;
      const waiting = await sbx.waitFor(
        NAME,
        (s) => {
          expect(s.status?.observedGeneration).toBe(gen);
          expect(condition(s, ConditionType.Ready)).toMatchObject({
            status: "False",
            reason: ConditionReason.EgressPending,
          });
        },
        30_000,
      );
      expect(condition(waiting, ConditionType.EgressReady)).toMatchObject({
        status: "False",
        reason: ConditionReason.EgressPending,
        message: expect.stringContaining(
          `waiting for the egress sidecar to apply the policy of generation ${gen}`,
        ),
      });
      // The file holds the new policy; the acknowledgement still names the old one.
      const narrowed = policyFileDigest(readFileSync(policyFile(sandbox)));
      expect(narrowed).not.toBe(before?.sha256);
      expect(ack(sandbox)).toEqual(before);
      // And it stays so, past the controller's wait and its recheck.
      await new Promise((r) => setTimeout(r, 3_000));
      const still = await sbx.get(NAME);
      expect(condition(still!, ConditionType.Ready)?.status).toBe("False");

      const thawedAt = Date.now();
      expect((await docker(["unpause", sidecar])).code).toBe(0);
      unpaused = true;
      const ready = await sbx.waitFor(
        NAME,
        (s) => {
          expect(s.status?.observedGeneration).toBe(gen);
          isReady(s);
        },
        30_000,
      );
      console.log(`unpaused -> Ready seen by the client: ${Date.now() - thawedAt} ms`);
      expect(ack(sandbox)).toEqual({ sha256: narrowed, applied: true });
      expect(condition(ready, ConditionType.EgressReady)?.message).toContain(
        `acknowledged the policy of generation ${gen}`,
      );
      // The first connection after Ready is judged by the narrowed policy.
      const arrived = connections();
      expect(await fetchAllowed()).toContain("refused");
      expect(connections()).toBe(arrived);
    } finally {
      if (!unpaused) await docker(["unpause", sidecar]);
    }
  });

  it.each([
    ["the workload's user", []],
    ["root in the workload container", ["-u", "0"]],
  ])("%s can neither see nor forge the acknowledgement", async (_, user) => {
    const { workload } = containerNames(sandbox);
    const hostBefore = readFileSync(ackFile(sandbox), "utf8");
    const mtimeBefore = statSync(ackFile(sandbox)).mtimeMs;
    const forged = JSON.stringify({ sha256: "f".repeat(64), applied: true });
    const script = [
      // Not there: the file is mounted into the sidecar's mount namespace only.
      `test -e ${POLICY_ACK_FILE} && echo visible || echo absent`,
      "grep -c -e sandbox-egress -e /policies /proc/self/mountinfo || true",
      // Nor is the sidecar's process (its /proc/PID/root would lead to its
      // mounts); the pattern does not match this script's own command line.
      "grep -l 'dist/egres[s]/sandbox' /proc/[0-9]*/cmdline 2>/dev/null | wc -l",
      // Written where the workload can: its own file system, not the host's file.
      `(mkdir -p ${POLICY_ACK_FILE.replace(/\/[^/]+$/, "")} && echo '${forged}' > ${POLICY_ACK_FILE} && echo wrote-own) 2>&1 || echo write-refused`,
    ].join("; ");
    const r = await docker(["exec", ...user, workload, "sh", "-c", script]);
    expect(r.code, r.stderr).toBe(0);
    const [seen, mounts, processes] = r.stdout.trim().split("\n");
    expect(seen).toBe("absent");
    expect(mounts).toBe("0");
    expect(processes).toBe("0");
    // Whatever it wrote, the host's acknowledgement is untouched.
    expect(readFileSync(ackFile(sandbox), "utf8")).toBe(hostBefore);
    expect(statSync(ackFile(sandbox)).mtimeMs).toBe(mtimeBefore);
    // The sidecar's own view: its mount is the host's file.
    const inSidecar = await docker([
      "exec",
      containerNames(sandbox).sidecar,
      "cat",
      POLICY_ACK_FILE,
    ]);
    expect(inSidecar.stdout).toBe(hostBefore);
  });
});
