// An apiserver outage longer than the informers' long backoff (35 s > 30 s):
// /readyz says the watches are down while it lasts, and once the apiserver
// answers again the controller is back at work within seconds, not after a
// backoff or on a stale cache. A control plane of its own: killing the shared
// one would fail every other test running meanwhile.
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../support/control-plane.js";
import { type ControllerProcess, startControllerProcess } from "../support/controller-process.js";
import { eventually } from "../support/eventually.js";
import { SandboxClient } from "../support/sandboxes.js";

const OUTAGE_MS = 35_000;
const NS = "outage";
let cp: ControlPlane;
let controller: ControllerProcess | undefined;
let sbx: SandboxClient;

beforeAll(async () => {
  cp = await startControlPlane({ crds: true });
  const kc = cp.kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  // No kube-controller-manager here to create it, and Pods are refused without it.
  await core.createNamespacedServiceAccount({
    namespace: NS,
    body: { metadata: { name: "default" } },
  });
  sbx = new SandboxClient(kc, NS);
}, 180_000);
afterAll(async () => {
  await controller?.stop();
  await cp?.stop();
});

const readyz = async () => {
  const res = await fetch(controller!.readyz).catch(() => undefined);
  return { status: res?.status ?? 0, body: (await res?.text()) ?? "" };
};

describe("after an apiserver outage", () => {
  it("reports the watches down meanwhile and works on a fresh cache within seconds of the return", {
    timeout: 150_000,
  }, async () => {
    controller = await startControllerProcess({
      kubeconfig: join(cp.dir, "operator-0.kubeconfig"),
      namespace: NS,
      podName: "outage",
    });
    await sbx.create("before", { image: "busybox" });
    await sbx.waitFor("before", (s) => expect(s.status?.phase).toBeDefined());

    await cp.killApiserver();
    const killedAt = Date.now();
    const seen: number[] = [];
    let notReady: { status: number; body: string } | undefined;
    while (Date.now() - killedAt < OUTAGE_MS) {
      const r = await readyz();
      seen.push(r.status);
      if (r.status !== 200) notReady ??= r;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(notReady?.status, `readyz during the outage: ${seen.join(",")}`).toBe(503);
    expect(notReady?.body).toMatch(/watches: .*watch down/);

    await cp.restartApiserver();
    const answeredAt = performance.now();
    await sbx.create("after", { image: "busybox" });
    await sbx.waitFor("after", (s) => expect(s.status?.phase).toBeDefined(), 15_000);
    const tookMs = performance.now() - answeredAt;
    const down = seen.filter((status) => status !== 200).length;
    console.info(
      `outage: /readyz non-200 in ${down} of ${seen.length} polls; reconciled ${Math.round(tookMs)} ms after the apiserver answered`,
    );
    // Lease retry (2 s) + a watch restart (<= 1 s) + the reconcile itself.
    expect(tookMs, controller.logs()).toBeLessThan(5000);
    await eventually(async () => expect((await readyz()).status).toBe(200), { timeout: 5000 });
  });
});
