// The pod backend's agent credential against the real apiserver (kwok stands
// in for the kubelet; the agent itself runs in test/node/sandbox-agent.test.ts):
// a Secret per Sandbox, created before its Pod and owned by it, holding the
// token and its digest, of which only the digest is mounted; never inherited
// from an earlier Sandbox of the same name; someone else's Secret of that
// name is never overwritten.
import { createHash } from "node:crypto";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;

beforeAll(async () => {
  ns = await testNamespace(kc, "agent-secret");
  sbx = new SandboxClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-2" });
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
});

const secretOf = (name: string) =>
  core.readNamespacedSecret({ name: `${name}-sandbox-agent`, namespace: ns.name });
const tokenOf = (s: k8s.V1Secret) => Buffer.from(s.data!.token!, "base64").toString();

describe("the agent's credential on the pod backend", () => {
  it("is a Secret per sandbox, owned by it, whose digest alone is mounted in the Pod", async () => {
    await sbx.create("one", { image: "busybox", command: ["sleep", "3600"] });
    await sbx.create("two", { image: "busybox", command: ["sleep", "3600"] });
    const one = await sbx.waitFor("one", isReady);
    await sbx.waitFor("two", isReady);
    const [a, b] = [await secretOf("one"), await secretOf("two")];
    expect(a.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "Sandbox",
      uid: one.metadata.uid,
      controller: true,
    });
    expect(a.immutable).toBe(true);
    expect(tokenOf(a)).toHaveLength(43);
    expect(tokenOf(a)).not.toBe(tokenOf(b));
    expect(Buffer.from(a.data!["token.sha256"]!, "base64").toString()).toBe(
      createHash("sha256").update(tokenOf(a)).digest("hex"),
    );
    const pod = (await sbx.pod("one"))!;
    const vol = pod.spec?.volumes?.find((v) => v.secret?.secretName === "one-sandbox-agent");
    expect(vol?.secret?.items).toEqual([{ key: "token.sha256", path: "token.sha256" }]);
  });

  it("is not inherited: a Sandbox recreated under the same name gets a new one", async () => {
    const before = tokenOf(await secretOf("one"));
    await sbx.delete("one");
    await sbx.waitGone("one", 60_000);
    await sbx.create("one", { image: "busybox", command: ["sleep", "3600"] });
    const again = await sbx.waitFor("one", isReady, 60_000);
    const after = await secretOf("one");
    expect(after.metadata?.ownerReferences?.[0]?.uid).toBe(again.metadata.uid);
    expect(tokenOf(after)).not.toBe(before);
  });

  it("someone else's Secret of that name is left alone, and the sandbox says why", async () => {
    await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: "taken-sandbox-agent" }, stringData: { token: "mine" } },
    });
    await sbx.create("taken", { image: "busybox", command: ["sleep", "3600"] });
    await eventually(async () => {
      const s = await sbx.get("taken");
      expect(condition(s!, ConditionType.Ready)?.reason).toBe(ConditionReason.NameTaken);
    });
    expect(tokenOf(await secretOf("taken"))).toBe("mine");
    expect(await sbx.pod("taken")).toBeUndefined();
  });
});
