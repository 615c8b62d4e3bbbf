// How a warm claim learns that its sandbox is Ready, against the real
// apiserver with the real Sandbox controller (pod backend; kwok runs the
// Pods): from the Sandbox controller's own status write, in the same process
// (src/controller/own-status-source.ts), not from that write's watch event;
// the claim's Ready write goes out beside the Sandbox's. And when the
// apiserver refuses the Sandbox's Ready write (here a validating webhook that
// answers after a second, so the claim's write lands first), the claim does
// not stay Ready, nor flip back to Ready on each retry that is refused.
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { Labels } from "../../src/api/labels.js";
import type { Sandbox } from "../../src/api/sandbox.js";
import { Informer, type KubeObject, type ObjectSource } from "../../src/controller/informer.js";
import { createLogger } from "../../src/observability/logger.js";
import { readyAtGeneration } from "../../src/pool/pooled.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator, startPools } from "../support/operator.js";
import { policyTls } from "../support/policy-tls.js";
import { PoolClient, SANDBOX_PLURAL as SANDBOXES } from "../support/pools.js";

const kc = kubeConfig();
const small = { cpu: "100m", memory: "64Mi" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let ns: Awaited<ReturnType<typeof testNamespace>>;
let api: PoolClient;
let operator: RunningOperator;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ns = await testNamespace(kc, "ready-path");
  api = new PoolClient(kc, ns.name);
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
});
afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await operator?.stop();
  await ns?.delete();
});

async function readyPool(pool: string, n: number) {
  await eventually(
    async () => {
      const p = await api.getPool(pool);
      expect(p?.status?.readyReplicas).toBe(n);
      expect(p?.status?.replicas).toBe(n);
    },
    { timeout: 60_000 },
  );
}

/**
 * A Sandbox cache that, once frozen, takes in every change but a status
 * change: what a claim controller reading it sees of a status comes only
 * from the Sandbox controller's own writes (the scaffolding of this test,
 * over a real watch).
 */
function statusFrozen(source: Informer<Sandbox & KubeObject>) {
  const cache = new Map<string, Sandbox & KubeObject>();
  const handlers: Parameters<ObjectSource<Sandbox & KubeObject>["on"]>[0][] = [];
  const key = (o: KubeObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  const state = { frozen: false, hidden: new Set<string>() };
  const statusOnly = (a: Sandbox, b: Sandbox) =>
    a.metadata.generation === b.metadata.generation &&
    JSON.stringify(a.metadata.labels) === JSON.stringify(b.metadata.labels) &&
    JSON.stringify(a.metadata.ownerReferences) === JSON.stringify(b.metadata.ownerReferences);
  source.on({
    add: (o) => {
      cache.set(key(o), o);
      for (const h of handlers) h.add?.(o);
    },
    update: (o) => {
      const old = cache.get(key(o));
      if (state.frozen && old && statusOnly(o, old)) {
        state.hidden.add(o.metadata.name!);
        return;
      }
      cache.set(key(o), o);
      if (old) for (const h of handlers) h.update?.(o, old);
    },
    delete: (o) => {
      cache.delete(key(o));
      for (const h of handlers) h.delete?.(o);
    },
  });
  const view: ObjectSource<Sandbox & KubeObject> = {
    on: (h) => void handlers.push(h),
    start: () => {},
    stop: async () => {},
    hasSynced: () => source.hasSynced(),
    upToDate: (signal) => source.upToDate(signal),
    problems: () => source.problems(),
    get: (k) => cache.get(k),
    list: () => [...cache.values()],
  };
  return { view, state };
}

describe("a warm claim's way to Ready", () => {
  it("is Ready from the Sandbox controller's own status write, without its watch event", async () => {
    const informer = new Informer<Sandbox & KubeObject>({
      kubeConfig: kc,
      apiPath: `/apis/${GROUP}/${VERSION}`,
      resource: SANDBOX_PLURAL,
      namespaces: [ns.name],
      log: createLogger({ level: "silent" }),
    });
    const frozen = statusFrozen(informer);
    informer.start();
    stops.push(() => informer.stop());
    const pools = await startPools({
      namespace: ns.name,
      sandboxes: frozen.view,
      sandboxStatusWrites: operator.sandboxStatusWrites,
    });
    stops.push(() => pools.stop());

    await api.template("t1", { image: "busybox", resources: small, lifetime: { ttlSeconds: 600 } });
    await api.pool("p1", { templateRef: { name: "t1" }, replicas: 1 });
    await readyPool("p1", 1);
    await eventually(() =>
      expect(
        frozen.view
          .list()
          .filter((s) => s.metadata.labels?.[Labels.pool] === "p1" && readyAtGeneration(s)),
      ).toHaveLength(1),
    );
    // The pooled sandbox's Ready is in the frozen cache; from now on no status
    // change reaches it by the watch.
    frozen.state.frozen = true;

    await api.claim("c1", { templateRef: { name: "t1" }, lifetime: { ttlSeconds: 300 } });
    const claim = await eventually(
      async () => {
        const c = await api.getClaim("c1");
        expect(c?.status?.phase, JSON.stringify(c?.status)).toBe("Ready");
        return c!;
      },
      { timeout: 20_000 },
    );
    expect(claim.status?.source).toBe("Warm");
    const name = claim.status!.sandboxName!;
    // The Sandbox's Ready (and the binding's status) did arrive by the watch, and was kept from the cache.
    const stored = await api.get<Sandbox>(SANDBOXES, name);
    expect(readyAtGeneration(stored!)).toBe(true);
    await eventually(() => expect(frozen.state.hidden.has(name)).toBe(true));
    const cached = frozen.view.get(`${ns.name}/${name}`)!;
    expect(readyAtGeneration(cached)).toBe(false);
    await pools.stop();
  }, 90_000);

  it("does not stay Ready when the apiserver refuses its sandbox's Ready, nor flip back on the retries", async () => {
    const pools = await startPools({
      namespace: ns.name,
      sandboxes: operator.allSandboxes,
      sandboxStatusWrites: operator.sandboxStatusWrites,
    });
    stops.push(() => pools.stop());
    await api.template("t2", { image: "busybox", resources: small, lifetime: { ttlSeconds: 600 } });
    await api.pool("p2", { templateRef: { name: "t2" }, replicas: 1 });
    await readyPool("p2", 1);

    // A validating webhook on Sandbox status writes of claimed sandboxes in
    // this namespace: while `refusing`, a Ready status is refused after a
    // second (the claim's own write, sent beside it, lands first).
    const tls = policyTls(["127.0.0.1"]);
    const hook = { refusing: false, seen: 0, refused: 0 };
    const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        const obj = review.request?.object as Sandbox | undefined;
        hook.seen++;
        const ready = !!obj?.status?.conditions?.some(
          (c) => c.type === "Ready" && c.status === "True",
        );
        const refuse = hook.refusing && ready && obj?.metadata.name !== "probe";
        if (refuse) {
          hook.refused++;
          await sleep(1000);
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            apiVersion: "admission.k8s.io/v1",
            kind: "AdmissionReview",
            response: {
              uid: review.request?.uid,
              allowed: !refuse,
              ...(refuse ? { status: { code: 403, message: "Ready refused by the test" } } : {}),
            },
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    stops.push(() => new Promise((r) => server.close(() => r(undefined))));
    const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    const hookName = `ready-refusal-${ns.name}`;
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: hookName },
        webhooks: [
          {
            name: "ready-refusal.sandboxing.dev",
            clientConfig: {
              url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/validate`,
              caBundle: Buffer.from(tls.ca).toString("base64"),
            },
            rules: [
              {
                apiGroups: [GROUP],
                apiVersions: [VERSION],
                operations: ["UPDATE"],
                resources: ["sandboxes/status"],
                scope: "Namespaced",
              },
            ],
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns.name } },
            objectSelector: { matchExpressions: [{ key: Labels.claim, operator: "Exists" }] },
            sideEffects: "None",
            admissionReviewVersions: ["v1"],
            timeoutSeconds: 10,
            failurePolicy: "Fail",
          },
        ],
      },
    });
    stops.push(() => admission.deleteValidatingWebhookConfiguration({ name: hookName }));
    // In force once the apiserver calls it: a claimed-looking Sandbox's status write.
    await api.objects.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns.name,
      plural: SANDBOX_PLURAL,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "Sandbox",
        metadata: { name: "probe", labels: { [Labels.claim]: "none" } },
        spec: { image: "busybox", resources: small },
      },
    });
    await eventually(
      async () => {
        const before = hook.seen;
        await api.objects.patchNamespacedCustomObjectStatus(
          {
            group: GROUP,
            version: VERSION,
            namespace: ns.name,
            plural: SANDBOX_PLURAL,
            name: "probe",
            body: { status: { message: `probe ${Date.now()}` } },
          },
          k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
        );
        expect(hook.seen).toBeGreaterThan(before);
      },
      { timeout: 20_000 },
    );
    await api.delete(SANDBOXES, "probe");

    hook.refusing = true;
    const phases: string[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const c = await api.getClaim("c2");
        const phase = c?.status?.phase ?? "";
        if (phases.at(-1) !== phase) phases.push(phase);
        await sleep(25);
      }
    })();
    try {
      await api.claim("c2", { templateRef: { name: "t2" }, lifetime: { ttlSeconds: 300 } });
      // Ready beside the Sandbox's write (which the webhook holds for a
      // second), then back once the apiserver refused it.
      await eventually(() => expect(phases).toContain("Ready"), { timeout: 20_000 });
      await eventually(
        () => {
          expect(hook.refused).toBeGreaterThanOrEqual(1);
          expect(phases.at(-1)).toBe("Bound");
        },
        { timeout: 20_000 },
      );
      const c = await api.getClaim("c2");
      const ready = c?.status?.conditions?.find((x) => x.type === "Ready");
      expect(ready?.status).toBe("False");
      // The Sandbox controller retries and is refused again; the claim stays as it is.
      const refusedBefore = hook.refused;
      const mark = phases.length;
      await eventually(() => expect(hook.refused).toBeGreaterThan(refusedBefore + 1), {
        timeout: 30_000,
      });
      expect(phases.slice(mark)).toEqual([]);
      expect(phases.at(-1)).toBe("Bound");
      const sandbox = await api.get<Sandbox>(SANDBOXES, c!.status!.sandboxName!);
      expect(readyAtGeneration(sandbox!)).toBe(false);

      // The refusal ends: the next retry lands and the claim is Ready again.
      hook.refusing = false;
      await eventually(() => expect(phases.at(-1)).toBe("Ready"), { timeout: 60_000 });
      expect(readyAtGeneration((await api.get<Sandbox>(SANDBOXES, c!.status!.sandboxName!))!)).toBe(
        true,
      );
    } finally {
      watching = false;
      await watch;
    }
    await pools.stop();
  }, 180_000);
});
