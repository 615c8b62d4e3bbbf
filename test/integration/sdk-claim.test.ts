// The SDK's claims and watches against the real apiserver, with the real
// Sandbox controller (pod backend; kwok runs the Pods, so no agent answers:
// these stop at the claim, the docker suite test/docker/sdk-claim.test.ts
// runs commands) and kube-controller-manager's garbage collector: a claim
// bound warm, a missing template surfacing as a typed error with nothing left
// behind, a timeout that deletes its claim, deleting the handle, and the
// watch source's fallback when a watch fails.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { watchSource } from "../../packages/sdk/src/watch.js";
import { API_VERSION, GROUP, TEMPLATE_KIND, VERSION } from "../../src/api/group.js";
import { Labels } from "../../src/api/labels.js";
import { ClaimFailedError, TimeoutError } from "../../src/dataplane/errors.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { PoolClient, TEMPLATE_PLURAL } from "../support/pools.js";

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
/** A namespace no controller watches: claims there are never served. */
let idle: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator;
let pools: Awaited<ReturnType<typeof startPools>>;

beforeAll(async () => {
  ns = await testNamespace(kc, "sdkclaim");
  idle = await testNamespace(kc, "sdkclaim-idle");
  api = new PoolClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
  // Wired as the CLI does: the claims read the Sandbox controller's writes in
  // flight, the pools only what is stored.
  pools = await startPools({
    namespace: ns.name,
    sandboxes: operator.allSandboxes,
    sandboxStatusWrites: operator.sandboxStatusWrites,
  });
  await api.template("py", {
    image: "busybox",
    resources: { cpu: "100m", memory: "64Mi" },
    lifetime: { ttlSeconds: 600 },
  });
  await api.pool("py", { templateRef: { name: "py" }, replicas: 1 });
  await eventually(async () => expect((await api.getPool("py"))?.status?.readyReplicas).toBe(1), {
    timeout: 60_000,
  });
});
afterAll(async () => {
  await pools?.stop();
  await operator?.stop();
  await ns?.delete();
  await idle?.delete();
});

const sdk = (namespace = ns.name) => ({ kubeconfig: kc, namespace });

describe("Sandbox.claim against the real apiserver", () => {
  it("binds a warm sandbox with the call's identity; deleting the handle deletes the claim and its sandbox", async () => {
    const box = await Sandbox.claim("py", {
      ...sdk(),
      labels: { team: "a" },
      ttlSeconds: 300,
      // (No egress rule: the pod backend without its policy channel serves those cold.)
      waitUntilReady: false,
    });
    expect(box.claim).toMatchObject({ source: "Warm", pool: "py" });
    expect(box.claim?.name).toMatch(/^sbx-/);
    const claim = await api.getClaim(box.claim!.name);
    expect(claim?.metadata.uid).toBe(box.claim?.uid);
    expect(claim?.spec).toMatchObject({
      templateRef: { name: "py" },
      labels: { team: "a" },
      lifetime: { ttlSeconds: 300 },
    });
    // The handle is the bound sandbox, as the watch delivered it: claimed, with the claim's identity.
    expect(box.name).toBe(claim?.status?.sandboxName);
    expect(box.status?.phase).toBe("Running");
    const stored = (await api.sandboxes(`${Labels.claimUid}=${box.claim!.uid}`))[0]!;
    expect(stored.metadata.name).toBe(box.name);
    expect(stored.metadata.labels).toMatchObject({ team: "a", [Labels.claim]: box.claim!.name });
    expect(stored.spec.lifetime?.expiresAt).toBe(claim?.status?.expiresAt);

    // A handle found by name knows its claim too (from the labels), and deletes it.
    const again = await Sandbox.get(box.name, sdk());
    expect(again.claim).toEqual({ name: box.claim!.name, uid: box.claim!.uid });
    await again.delete();
    await eventually(
      async () => {
        expect(await api.getClaim(box.claim!.name)).toBeUndefined();
        expect(await api.sandboxes(`${Labels.claimUid}=${box.claim!.uid}`)).toEqual([]);
      },
      { timeout: 60_000 },
    );
  });

  it("a missing template is a ClaimFailedError with the claim's condition; nothing is left behind", async () => {
    const err = await Sandbox.claim("nope", { ...sdk(), name: "no-template" }).catch((e) => e);
    expect(err).toBeInstanceOf(ClaimFailedError);
    expect(err).toMatchObject({ claim: "no-template", reason: "TemplateNotFound" });
    expect(err.message).toBe("claim no-template: SandboxTemplate nope does not exist");
    expect(await api.getClaim("no-template")).toBeUndefined();
    expect(await api.sandboxes(`${Labels.claim}=no-template`)).toEqual([]);
  });

  it("a template made a moment before the claim is not taken for a missing one", async () => {
    await api.template("fresh", { image: "busybox", resources: { cpu: "100m", memory: "64Mi" } });
    const box = await Sandbox.claim("fresh", { ...sdk(), waitUntilReady: false });
    // No pool of this template: served cold, named after the claim.
    expect(box.claim).toMatchObject({
      source: "Cold",
      coldReason: "no ready sandbox in a warm pool",
    });
    expect(box.name).toBe(box.claim?.name);
    await box.delete();
    await eventually(async () => expect(await api.getClaim(box.claim!.name)).toBeUndefined());
  });

  it("rejects bad options before anything is created", async () => {
    const before = (await api.claims()).length;
    await expect(Sandbox.claim("py", { ...sdk(), ttlSeconds: -1 })).rejects.toThrow(
      /^invalid claim: ttlSeconds: /,
    );
    expect(await api.claims()).toHaveLength(before);
  });

  it("times out with a TimeoutError naming the claim's state, and deletes the claim", async () => {
    const t0 = performance.now();
    const err = await Sandbox.claim("py", { ...sdk(idle.name), waitUntilReady: 1500 }).catch(
      (e) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err.message).toMatch(
      /^claim sdkclaim-idle-\w+\/sbx-\w+ not ready after 1500 ms: no sandbox bound yet$/,
    );
    expect(ms).toBeGreaterThanOrEqual(1500);
    expect(ms).toBeLessThan(10_000);
    expect(await new PoolClient(kc, idle.name).claims()).toEqual([]);
  });

  it("a claim deleted while it is awaited fails the wait with a ClaimFailedError", async () => {
    const pending = Sandbox.claim("py", {
      ...sdk(idle.name),
      name: "doomed",
      waitUntilReady: 30_000,
    });
    const other = new PoolClient(kc, idle.name);
    await eventually(async () => expect(await other.getClaim("doomed")).toBeDefined());
    await other.delete("sandboxclaims", "doomed");
    const err = await pending.catch((e) => e);
    expect(err).toBeInstanceOf(ClaimFailedError);
    expect(err).toMatchObject({ reason: "Deleted" });
  });
});

describe("the SDK's watch source", () => {
  it("falls back to a list when a watch fails, and follows changes from there", async () => {
    await api.template("w", { image: "busybox" });
    const seen: string[] = [];
    let changes = 0;
    // A resourceVersion the apiserver refuses: the watch fails; the source lists and watches on.
    const stop = watchSource<{ metadata: { name?: string; labels?: Record<string, string> } }>({
      kubeConfig: kc,
      group: GROUP,
      version: VERSION,
      plural: TEMPLATE_PLURAL,
      namespace: ns.name,
      fieldSelector: "metadata.name=w",
      resourceVersion: "not-a-version",
      onChange: (type, obj) => seen.push(`${type} ${obj.metadata.labels?.v ?? "-"}`),
    })(() => {
      changes++;
    });
    try {
      await eventually(() => expect(seen).toContain("ADDED -"), { timeout: 10_000 });
      await api.patch(TEMPLATE_PLURAL, "w", { metadata: { labels: { v: "2" } } });
      await eventually(() => expect(seen).toContain("MODIFIED 2"), { timeout: 10_000 });
      await api.objects.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns.name,
        plural: TEMPLATE_PLURAL,
        name: "w",
      });
      await eventually(() => expect(seen.at(-1)).toBe("DELETED 2"), { timeout: 10_000 });
      expect(changes).toBeGreaterThanOrEqual(3);
    } finally {
      stop();
    }
  });

  it("stopped, it stops: no change is reported after stop", async () => {
    const labelled = (name: string) =>
      api.objects.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns.name,
        plural: TEMPLATE_PLURAL,
        body: {
          apiVersion: API_VERSION,
          kind: TEMPLATE_KIND,
          metadata: { name, labels: { "sdk-test": "stop" } },
          spec: { image: "busybox" },
        },
      });
    const seen: string[] = [];
    const stop = watchSource<{ metadata: { name?: string } }>({
      kubeConfig: kc,
      group: GROUP,
      version: VERSION,
      plural: TEMPLATE_PLURAL,
      namespace: ns.name,
      labelSelector: "sdk-test=stop",
      onChange: (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
    })(() => {});
    await labelled("before-stop");
    await eventually(() => expect(seen).toEqual(["ADDED before-stop"]), { timeout: 10_000 });
    stop();
    await labelled("after-stop");
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen).toEqual(["ADDED before-stop"]);
  });
});
