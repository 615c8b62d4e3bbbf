// Per-test-file access to the shared control plane.
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { inject } from "vitest";

export function kubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(inject("kubeconfigPath"));
  return kc;
}

/** Kubeconfig path of a static test identity ("operator-0" ... "operator-3"). */
export function userKubeconfigPath(user: string): string {
  return join(dirname(inject("kubeconfigPath")), `${user}.kubeconfig`);
}

/** Create a namespace of its own for a test file; deleted by the returned function. */
export async function testNamespace(kc: k8s.KubeConfig, prefix: string) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return {
    name,
    delete: () => core.deleteNamespace({ name }).then(() => undefined),
  };
}

/** GET a raw apiserver path (e.g. /openapi/v3/...) with the kubeconfig's credentials. */
export async function apiGet(kc: k8s.KubeConfig, path: string) {
  const https = await import("node:https");
  const cluster = kc.getCurrentCluster()!;
  const opts: import("node:https").RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get(new URL(path, cluster.server), opts, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}
