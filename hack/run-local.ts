// `make run` and `make dev`: a local control plane (the test harness's real
// etcd and kube-apiserver) with the Sandbox controller attached, a kubeconfig to
// use it, and examples/hello.yaml applied. Ctrl-C stops and removes everything.
//
//   make run   pod backend: kube-controller-manager, kube-scheduler and kwok
//              (which plays the kubelet) run beside the apiserver
//   make dev   docker backend (`--docker`): sandboxes are containers on the local
//              Docker engine, started when absent; no kubelet needed.
//              SANDBOX_DEV_IMAGE replaces the example's image (no pull attempted);
//              DOCKER_DNS names the resolver sandboxes' egress sidecars use.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Registry } from "prom-client";
import { parse, stringify } from "yaml";
import { dockerClient } from "../src/backends/docker/index.js";
import { defaultUpstreamDns } from "../src/backends/docker/resolv-conf.js";
import { loadKubeConfig } from "../src/kube/config.js";
import { startObservabilityServer } from "../src/observability/http.js";
import { createLogger } from "../src/observability/logger.js";
import { startSandboxController } from "../src/sandbox/controller.js";
import { startControlPlane } from "../test/support/control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "../test/support/docker.js";
import { REPO_ROOT } from "../test/support/paths.js";
import { leaveSignalsToCaller } from "../test/support/processes.js";

const execFileAsync = promisify(execFile);
leaveSignalsToCaller();
const useDocker = process.argv.includes("--docker");
const log = createLogger();

let dockerHost: string | undefined;
if (useDocker) {
  dockerHost = execFileSync("bash", [join(REPO_ROOT, "hack/docker/ensure-dockerd.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  // The operator image carries the egress sidecar; the basic image stands in
  // for an example's image when it cannot be pulled.
  execFileSync("bash", [join(REPO_ROOT, "hack/images/build-all.sh")], { stdio: "inherit" });
}

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: !useDocker,
  kwok: !useDocker,
  crds: true,
});
const registry = new Registry();
const server = await startObservabilityServer({ host: "127.0.0.1", port: 8080 }, registry).catch(
  () => undefined,
);
const controller = await startSandboxController({
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 50, burst: 100 }),
  namespaces: [],
  defaultBackend: useDocker ? "docker" : "pod",
  egressImage: useDocker ? OPERATOR_IMAGE : "sandbox-operator:dev",
  docker: useDocker
    ? {
        client: dockerClient(dockerHost),
        settings: {
          owner: "dev",
          upstreamDns: process.env.DOCKER_DNS ?? defaultUpstreamDns() ?? "1.1.1.1",
          publishAddress: "127.0.0.1",
        },
      }
    : undefined,
  concurrency: 4,
  stallTimeoutSeconds: 300,
  registry,
  log,
});
server?.addReadinessCheck("informers", () =>
  controller.ready() ? undefined : "caches not synced",
);
if (useDocker) server?.addReadinessCheck("docker", () => controller.dockerUnavailable());

const kubectl = join(cp.binDir, "kubectl");
// Asynchronous: the controller runs in this process and must keep running meanwhile.
const kube = async (...args: string[]) =>
  (await execFileAsync(kubectl, ["--kubeconfig", cp.kubeconfigPath, ...args])).stdout;
const example = parse(readFileSync(join(REPO_ROOT, "examples/hello.yaml"), "utf8"));
const devImage = process.env.SANDBOX_DEV_IMAGE;
if (useDocker && devImage) example.spec.image = devImage;
else if (useDocker && !imageAvailable(example.spec.image)) {
  process.stderr.write(
    `${example.spec.image} is not present and cannot be pulled here; running hello with ${SANDBOX_IMAGE} instead\n`,
  );
  example.spec.image = SANDBOX_IMAGE;
}
const manifest = join(cp.dir, "hello.yaml");
writeFileSync(manifest, stringify(example));
process.stderr.write(await kube("apply", "-f", manifest));
if (useDocker) {
  await kube("wait", "--for=jsonpath={.status.phase}=Succeeded", "sandbox/hello", "--timeout=120s");
  process.stderr.write(await kube("get", "sandbox", "hello"));
}

process.stderr.write(`
A local control plane is running with the Sandbox controller attached (${
  useDocker
    ? "docker backend: sandboxes are containers on the local engine"
    : "kwok plays the kubelet"
}).

  export KUBECONFIG=${cp.kubeconfigPath}
  alias kubectl=${kubectl}
  kubectl get sbx -w
  kubectl describe sandbox hello
${useDocker ? "  docker ps --filter label=sandboxing.dev/owner=dev\n" : ""}${
  server ? "  curl -s localhost:8080/metrics | grep sandbox_operator_\n" : ""
}
Ctrl-C stops everything${useDocker ? " and removes the sandboxes' containers" : ""}.
`);

const stop = async () => {
  if (useDocker) {
    // Let the finalizers remove the containers while the controller still runs.
    await kube("delete", "sandboxes", "--all", "--all-namespaces", "--wait=true", "--timeout=60s");
  }
  await controller.stop();
  await server?.close();
  await cp.stop();
  process.exit(0);
};
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());

function imageAvailable(image: string): boolean {
  for (const args of [
    ["image", "inspect", image],
    ["pull", "-q", image],
  ]) {
    try {
      execFileSync("docker", args, { stdio: "ignore", timeout: 120_000 });
      return true;
    } catch {}
  }
  return false;
}
