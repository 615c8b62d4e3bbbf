// The controller's policy endpoint against the real apiserver (kwok stands in
// for the kubelet; the sidecar's side runs on the real node in
// test/node/policy-channel*.test.ts). Tokens are minted the way the kubelet
// mints the sidecar's projected one: TokenRequest for the Pod's
// ServiceAccount, bound to the Pod, for the endpoint's audience. What is
// proven: only such a token is accepted, it yields its own Pod's Sandbox's
// policy and nothing else, it dies with its Pod, a change is streamed, and an
// acknowledgement is recorded on the Pod only for the policy in force.
import http2 from "node:http2";
import * as k8s from "@kubernetes/client-node";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICY_ANNOTATION } from "../../src/backends/pod/egress.js";
import { POLICY_FILE_DEFER_MS } from "../../src/backends/pod/policy-file.js";
import {
  POLICY_APPLIED_ANNOTATION,
  POLICY_AUDIENCE,
  policyHash,
} from "../../src/policy-server/contract.js";
import { writesReceivedSince } from "../support/audit.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { policyTls } from "../support/policy-tls.js";
import { SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const REVIEW_CACHE_MS = 1_000;
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;
let base: string;
let agent: Agent;
let ca: string;

const egressA = {
  defaultAction: "deny" as const,
  rules: [{ action: "allow" as const, target: "a.example" }],
};
const egressB = {
  defaultAction: "deny" as const,
  rules: [{ action: "allow" as const, target: "b.example" }],
};

beforeAll(async () => {
  ns = await testNamespace(kc, "policy-server");
  sbx = new SandboxClient(kc, ns.name);
  const tls = policyTls(["127.0.0.1"]);
  agent = new Agent({ connect: { ca: tls.ca } });
  ca = tls.ca;
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-3",
    policyChannel: {
      listen: { host: "127.0.0.1", port: 0 },
      endpoint: { host: "10.96.0.200", port: 15090 },
      tls,
      // Short, so a test can outlive a review (the default is 30 s).
      reviewCacheMs: REVIEW_CACHE_MS,
    },
  });
  base = `https://127.0.0.1:${operator.policyPort()}`;
  // The namespace's ServiceAccount (the serviceaccount controller makes it).
  await eventually(() =>
    core.readNamespacedServiceAccount({ name: "default", namespace: ns.name }),
  );
  await sbx.create("a", {
    image: "busybox",
    command: ["sleep", "3600"],
    network: { egress: egressA },
  });
  await sbx.create("b", {
    image: "busybox",
    command: ["sleep", "3600"],
    network: { egress: egressB },
  });
  // Running, never Ready: no sidecar acknowledges here (kwok runs nothing), and
  // with the channel on, Ready waits for the acknowledgement.
  const running = (s: { status?: { phase?: string } }) => expect(s.status?.phase).toBe("Running");
  await sbx.waitFor("a", running);
  await sbx.waitFor("b", running);
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await agent?.close();
});

/** A token as the kubelet projects it: the Pod's ServiceAccount, bound to the Pod. */
async function tokenFor(
  pod: string,
  opts: { audience?: string; bound?: boolean } = {},
): Promise<string> {
  const p = await core.readNamespacedPod({ name: pod, namespace: ns.name });
  const tr = await core.createNamespacedServiceAccountToken({
    name: "default",
    namespace: ns.name,
    body: {
      spec: {
        audiences: [opts.audience ?? POLICY_AUDIENCE],
        expirationSeconds: 600,
        ...(opts.bound === false
          ? {}
          : { boundObjectRef: { kind: "Pod", apiVersion: "v1", name: pod, uid: p.metadata!.uid } }),
      },
    },
  });
  return tr.status!.token!;
}

async function get(path: string, token?: string) {
  const res = await request(`${base}${path}`, {
    dispatcher: agent,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function ack(token: string, body: unknown) {
  const res = await request(`${base}/v1/policy/applied`, {
    method: "POST",
    dispatcher: agent,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe("the policy endpoint's authentication", () => {
  it("refuses no token, a malformed one, and an invalid one", async () => {
    expect((await get("/v1/policy")).status).toBe(401);
    expect((await get("/v1/policy", "not a token")).status).toBe(401);
    const bad = await get("/v1/policy", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
    expect(bad).toMatchObject({ status: 401, body: { error: "TOKEN_REJECTED" } });
  });

  it("refuses a token for another audience (the Pod's default API token)", async () => {
    const token = await tokenFor("a", { audience: "https://kubernetes.default.svc.cluster.local" });
    expect(await get("/v1/policy", token)).toMatchObject({
      status: 401,
      body: { error: "TOKEN_REJECTED" },
    });
  });

  it("refuses a ServiceAccount token bound to no Pod", async () => {
    const token = await tokenFor("a", { bound: false });
    expect(await get("/v1/policy", token)).toMatchObject({
      status: 401,
      body: { error: "NOT_POD_BOUND" },
    });
  });
});

describe("the policy endpoint's authorization", () => {
  it("answers a Pod's token with exactly its own Sandbox's policy, whatever is asked", async () => {
    const [ta, tb] = [await tokenFor("a"), await tokenFor("b")];
    const a = await get("/v1/policy", ta);
    expect(a).toMatchObject({ status: 200, body: { hash: policyHash(egressA), policy: egressA } });
    expect((await get("/v1/policy", tb)).body).toMatchObject({ hash: policyHash(egressB) });
    // Nothing in the request names a sandbox: A's token cannot ask for B's.
    for (const path of [
      "/v1/policy?name=b",
      "/v1/policy?namespace=x&pod=b",
      "/v1/policy/../policy?b",
    ]) {
      const r = await get(path, ta);
      if (r.status === 200) expect(r.body.hash).toBe(policyHash(egressA));
    }
    expect((await get("/v1/policy/b", ta)).status).toBe(404);
  });

  it("refuses a token whose Pod was replaced", async () => {
    const old = await tokenFor("b");
    expect((await get("/v1/policy", old)).status).toBe(200);
    const before = await core.readNamespacedPod({ name: "b", namespace: ns.name });
    await core.deleteNamespacedPod({ name: "b", namespace: ns.name, gracePeriodSeconds: 0 });
    // The operator recreates the Pod (a new UID): the old token names the old one.
    await eventually(
      async () => {
        const p = await core.readNamespacedPod({ name: "b", namespace: ns.name });
        expect(p.metadata!.uid).not.toBe(before.metadata!.uid);
      },
      { timeout: 30_000 },
    );
    await eventually(async () => {
      const r = await get("/v1/policy", old);
      expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(401);
      expect(r.status).toBeLessThanOrEqual(403);
    });
    // The new Pod's own token works.
    expect((await get("/v1/policy", await tokenFor("b"))).status).toBe(200);
  });
});

describe("the policy stream and acknowledgements", () => {
  it("streams a change to the watching Pod within milliseconds, and only to it", async () => {
    const [ta, tb] = [await tokenFor("a"), await tokenFor("b")];
    const open = async (token: string) => {
      const res = await request(`${base}/v1/policy?watch=1`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.statusCode).toBe(200);
      const lines: { hash: string; t: number }[] = [];
      let buf = "";
      res.body.on("data", (chunk: Buffer) => {
        buf += chunk.toString();
        let i = buf.indexOf("\n");
        while (i >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) lines.push({ ...JSON.parse(line), t: performance.now() });
          i = buf.indexOf("\n");
        }
      });
      return { lines, close: () => res.body.destroy() };
    };
    const wa = await open(ta);
    const wb = await open(tb);
    await eventually(() => expect(wa.lines).toHaveLength(1));
    await eventually(() => expect(wb.lines).toHaveLength(1));
    const next = {
      defaultAction: "deny" as const,
      rules: [{ action: "allow" as const, target: "c.example" }],
    };
    const t0 = performance.now();
    await sbx.patchSpec("a", { network: { egress: next } });
    await eventually(() => expect(wa.lines).toHaveLength(2), { interval: 2 });
    const ms = wa.lines[1]!.t - t0;
    console.log(`policy change -> stream message: ${ms.toFixed(1)} ms`);
    expect(wa.lines[1]!.hash).toBe(policyHash(next));
    expect(ms).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 200));
    expect(wb.lines).toHaveLength(1);
    wa.close();
    wb.close();
  });

  it("records an acknowledgement of the policy in force on the Pod, and refuses others", async () => {
    const token = await tokenFor("a");
    const current = (await get("/v1/policy", token)).body as { generation: number; hash: string };
    expect(await ack(token, { generation: 1, hash: "0".repeat(64) })).toMatchObject({
      status: 409,
      body: { error: "STALE_POLICY" },
    });
    expect((await ack(token, { generation: 1 })).status).toBe(400);
    expect((await ack(token, { generation: current.generation, hash: current.hash })).status).toBe(
      200,
    );
    await eventually(async () => {
      const p = await core.readNamespacedPod({ name: "a", namespace: ns.name });
      expect(p.metadata!.annotations![POLICY_APPLIED_ANNOTATION]).toBe(current.hash);
    });
    const b = await core.readNamespacedPod({ name: "b", namespace: ns.name });
    expect(b.metadata!.annotations?.[POLICY_APPLIED_ANNOTATION]).toBeUndefined();
  });

  it("serves a sidecar over HTTP/2: its watch and its acknowledgement share one connection", async () => {
    const token = await tokenFor("b");
    const session = http2.connect(base, { ca });
    try {
      await new Promise<void>((resolve, reject) => {
        session.once("connect", () => resolve());
        session.once("error", reject);
      });
      expect(session.alpnProtocol).toBe("h2");
      const auth = { authorization: `Bearer ${token}` };
      const watch = session.request({ ":path": "/v1/policy?watch=1", ...auth });
      const first = await new Promise<string>((resolve, reject) => {
        let text = "";
        watch.setEncoding("utf8");
        watch.on("data", (chunk: string) => {
          text += chunk;
          if (text.includes("\n")) resolve(text.slice(0, text.indexOf("\n")));
        });
        watch.once("error", reject);
      });
      const current = JSON.parse(first) as { generation: number; hash: string };
      expect(current.hash).toBe(policyHash(egressB));
      // The acknowledgement: another stream on the same session, while the watch stays open.
      const post = session.request({
        ":method": "POST",
        ":path": "/v1/policy/applied",
        "content-type": "application/json",
        ...auth,
      });
      post.end(JSON.stringify({ generation: current.generation, hash: current.hash }));
      const status = await new Promise<number>((resolve, reject) => {
        post.once("response", (h) => resolve(Number(h[":status"])));
        post.once("error", reject);
      });
      post.resume();
      expect(status).toBe(200);
      expect(watch.closed).toBe(false);
      await eventually(async () => {
        const p = await core.readNamespacedPod({ name: "b", namespace: ns.name });
        expect(p.metadata!.annotations![POLICY_APPLIED_ANNOTATION]).toBe(current.hash);
      });
      watch.close();
    } finally {
      session.close();
    }
  });
});

describe("the Pod's policy file with the channel", () => {
  const egressF = {
    defaultAction: "deny" as const,
    rules: [{ action: "allow" as const, target: "f.example", ports: [443] }],
  };
  const running = (s: { status?: { phase?: string } }) => expect(s.status?.phase).toBe("Running");
  const fileOf = async (name: string) => {
    const p = await core.readNamespacedPod({ name, namespace: ns.name });
    const a = p.metadata!.annotations ?? {};
    return {
      policy: policyHash(JSON.parse(a[POLICY_ANNOTATION] ?? "{}")),
      applied: a[POLICY_APPLIED_ANNOTATION],
    };
  };
  /** Written by the endpoint with the acknowledgement (src/backends/pod/policy-file.ts). */
  it("is written with the acknowledgement, in one Pod write: the reconcile leaves it to the channel", async () => {
    await sbx.create("f", {
      image: "busybox",
      command: ["sleep", "3600"],
      network: { egress: egressA },
    });
    await sbx.waitFor("f", running);
    const token = await tokenFor("f");
    expect((await fileOf("f")).policy).toBe(policyHash(egressA));
    const since = new Date().toISOString().replace("Z", "000Z");
    await sbx.patchSpec("f", { network: { egress: egressF } });
    const current = await eventually(async () => {
      const m = (await get("/v1/policy", token)).body as { generation: number; hash: string };
      expect(m.hash).toBe(policyHash(egressF));
      return m;
    });
    expect((await ack(token, { generation: current.generation, hash: current.hash })).status).toBe(
      200,
    );
    await eventually(async () =>
      expect(await fileOf("f")).toEqual({ policy: current.hash, applied: current.hash }),
    );
    await sbx.waitFor("f", (s) =>
      expect(s.status?.conditions?.find((c) => c.type === "EgressReady")?.status).toBe("True"),
    );
    const podWrites = (await writesReceivedSince("operator-3", since, ns.name)).filter((w) =>
      w.includes(` patch pods ${ns.name}/f `),
    );
    expect(podWrites, podWrites.join("\n")).toHaveLength(1);
  });

  it("is written by the reconcile when no acknowledgement comes within the wait", async () => {
    await sbx.create("g", {
      image: "busybox",
      command: ["sleep", "3600"],
      network: { egress: egressA },
    });
    await sbx.waitFor("g", running);
    expect((await fileOf("g")).policy).toBe(policyHash(egressA));
    const t0 = performance.now();
    await sbx.patchSpec("g", { network: { egress: egressF } });
    await eventually(async () => expect((await fileOf("g")).policy).toBe(policyHash(egressF)), {
      timeout: 20_000,
      interval: 50,
    });
    // Not before the wait: the sidecar (ready, on the channel) had it to acknowledge first.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(POLICY_FILE_DEFER_MS);
    // No acknowledgement: the sandbox does not claim the new policy is in force.
    const s = await sbx.get("g");
    expect(s?.status?.conditions?.find((c) => c.type === "EgressReady")?.status).toBe("False");
  });
});

describe("an acknowledgement on an open stream's token", () => {
  const reviewsSince = async (since: string) =>
    (await writesReceivedSince("operator-3", since)).filter((w) =>
      w.includes(" create tokenreviews "),
    ).length;
  const microNow = () => new Date().toISOString().replace("Z", "000Z");

  it("waits for no TokenReview while that stream is open, and for one once it is closed", async () => {
    const token = await tokenFor("b");
    const res = await request(`${base}/v1/policy?watch=1`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.statusCode).toBe(200);
    let first = "";
    res.body.on("data", (chunk: Buffer) => {
      first += chunk.toString();
    });
    await eventually(() => expect(first).toContain("\n"));
    const current = JSON.parse(first.slice(0, first.indexOf("\n"))) as {
      generation: number;
      hash: string;
    };
    // The review of the watch has left the cache: a plain request would need another.
    await new Promise((r) => setTimeout(r, REVIEW_CACHE_MS + 300));
    const since = microNow();
    expect((await ack(token, { generation: current.generation, hash: current.hash })).status).toBe(
      200,
    );
    expect(await reviewsSince(since)).toBe(0);
    // A watch never rides another stream's review: it is reviewed itself.
    const again = await request(`${base}/v1/policy?watch=1`, {
      dispatcher: agent,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(again.statusCode).toBe(200);
    again.body.destroy();
    await eventually(async () => expect(await reviewsSince(since)).toBe(1));
    // Both streams closed and the review expired: the acknowledgement is reviewed.
    res.body.destroy();
    await new Promise((r) => setTimeout(r, REVIEW_CACHE_MS + 300));
    const later = microNow();
    expect((await ack(token, { generation: current.generation, hash: current.hash })).status).toBe(
      200,
    );
    await eventually(async () => expect(await reviewsSince(later)).toBe(1));
  });
});
