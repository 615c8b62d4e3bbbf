// `make run`: a local control plane (the test harness's real etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok, which plays the kubelet) with
// the Sandbox controller attached, and examples/hello.yaml applied. Ctrl-C stops
// and removes everything.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Registry } from "prom-client";
import { loadKubeConfig } from "../src/kube/config.js";
import { startObservabilityServer } from "../src/observability/http.js";
import { createLogger } from "../src/observability/logger.js";
import { startSandboxController } from "../src/sandbox/controller.js";
import { startControlPlane } from "../test/support/control-plane.js";
import { REPO_ROOT } from "../test/support/paths.js";

const log = createLogger();
const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  kwok: true,
  crds: true,
});
const registry = new Registry();
const server = await startObservabilityServer({ host: "127.0.0.1", port: 8080 }, registry).catch(
  () => undefined,
);
const controller = await startSandboxController({
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 50, burst: 100 }),
  namespaces: [],
  defaultBackend: "pod",
  egressImage: "sandbox-operator:dev",
  concurrency: 4,
  stallTimeoutSeconds: 300,
  registry,
  log,
});
server?.addReadinessCheck("informers", () =>
  controller.ready() ? undefined : "caches not synced",
);

const kubectl = join(cp.binDir, "kubectl");
execFileSync(
  kubectl,
  ["--kubeconfig", cp.kubeconfigPath, "apply", "-f", join(REPO_ROOT, "examples/hello.yaml")],
  {
    stdio: "inherit",
  },
);
process.stderr.write(`
A local control plane is running with the Sandbox controller attached (kwok plays the kubelet).

  export KUBECONFIG=${cp.kubeconfigPath}
  alias kubectl=${kubectl}
  kubectl get sbx -w
  kubectl describe sandbox hello
${server ? "  curl -s localhost:8080/metrics | grep sandbox_operator_\n" : ""}
Ctrl-C stops everything.
`);

const stop = async () => {
  await controller.stop();
  await server?.close();
  await cp.stop();
  process.exit(0);
};
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());
