// `make run` and `make dev`: a local control plane (the test harness's real
// etcd and kube-apiserver) with the Sandbox controller attached, a kubeconfig to
// use it, and examples/hello.yaml applied. Ctrl-C stops and removes everything.
//
//   make run   pod backend on a real node: kube-controller-manager,
//              kube-scheduler and a kubelet with containerd, CNI, kube-proxy and
//              kube-router (test/support/node) run beside the apiserver, so hello
//              really runs and `kubectl logs hello -c sandbox` shows its output.
//              Where a kubelet cannot run (not root, no cgroups, no Docker engine
//              to build the images), it says why and falls back to kwok, which
//              only writes Pod status: a simulation, labelled as such.
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
import {
  localTagOf,
  NODE_CONTROLLERS,
  nodeUnavailableReason,
  type RealNode,
  startNode,
} from "../test/support/node/index.js";
import { REPO_ROOT } from "../test/support/paths.js";
import { leaveSignalsToCaller } from "../test/support/processes.js";

const execFileAsync = promisify(execFile);
leaveSignalsToCaller();
const useDocker = process.argv.includes("--docker");
const log = createLogger();

let dockerHost: string | undefined;
/** Why the pod backend runs on kwok instead of a real node (undefined: a real node). */
let simulated: string | undefined = useDocker ? undefined : nodeUnavailableReason();
const ensureImages = () => {
  dockerHost = execFileSync("bash", [join(REPO_ROOT, "hack/docker/ensure-dockerd.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  // The operator image carries the egress sidecar; the basic image stands in
  // for an example's image when it cannot be pulled.
  execFileSync("bash", [join(REPO_ROOT, "hack/images/build-all.sh")], { stdio: "inherit" });
};
if (useDocker) ensureImages();
else if (!simulated) {
  try {
    ensureImages();
  } catch (err) {
    simulated = `the images could not be built (${(err as Error).message.split("\n")[0]})`;
  }
}
const realNode = !useDocker && !simulated;
if (simulated) {
  process.stderr.write(
    `\nNo real node here: ${simulated}.\nFalling back to kwok: SIMULATED, Pods get a status but nothing runs (no logs, no exec).\n\n`,
  );
}

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: !useDocker,
  kwok: !useDocker && !realNode,
  kubeletClient: realNode,
  extraControllers: realNode ? NODE_CONTROLLERS : [],
  crds: true,
});
let node: RealNode | undefined;
if (realNode) {
  try {
    node = await startNode(cp, { name: "local-node", images: [OPERATOR_IMAGE, SANDBOX_IMAGE] });
    process.stderr.write(
      `node local-node Ready in ${node.timings.total} ms (${JSON.stringify(node.timings)})\n`,
    );
  } catch (err) {
    await cp.stop();
    throw err;
  }
}
const registry = new Registry();
const server = await startObservabilityServer({ host: "127.0.0.1", port: 8080 }, registry).catch(
  () => undefined,
);
const controller = await startSandboxController({
  kubeConfig: loadKubeConfig({ kubeconfig: cp.kubeconfigPath, qps: 50, burst: 100 }),
  namespaces: [],
  defaultBackend: useDocker ? "docker" : "pod",
  egressImage: useDocker || realNode ? OPERATOR_IMAGE : "sandbox-operator:dev",
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
if ((useDocker || realNode) && devImage) example.spec.image = devImage;
else if (useDocker && !imageAvailable(example.spec.image)) {
  process.stderr.write(
    `${example.spec.image} is not present and cannot be pulled here; running hello with ${SANDBOX_IMAGE} instead\n`,
  );
  example.spec.image = SANDBOX_IMAGE;
} else if (realNode && !node!.ctr(["images", "ls", "-q"]).includes(example.spec.image)) {
  // The node has no registry to pull from; its images were imported from Docker.
  const local = localTagOf(SANDBOX_IMAGE);
  process.stderr.write(
    `${example.spec.image} is not on the node and cannot be pulled here; running hello with ${local} instead\n`,
  );
  example.spec.image = local;
}
const manifest = join(cp.dir, "hello.yaml");
writeFileSync(manifest, stringify(example));
process.stderr.write(await kube("apply", "-f", manifest));
if (useDocker || realNode) {
  await kube("wait", "--for=jsonpath={.status.phase}=Succeeded", "sandbox/hello", "--timeout=180s");
  process.stderr.write(await kube("get", "sandbox", "hello"));
}
if (realNode)
  process.stderr.write(
    `$ kubectl logs hello -c sandbox\n${await kube("logs", "hello", "-c", "sandbox")}`,
  );

const where = useDocker
  ? "docker backend: sandboxes are containers on the local engine"
  : realNode
    ? "pod backend on a real node: kubelet + containerd, Pods really run"
    : "pod backend on kwok: SIMULATED, Pods get a status but nothing runs";
process.stderr.write(`
A local control plane is running with the Sandbox controller attached (${where}).

  export KUBECONFIG=${cp.kubeconfigPath}
  alias kubectl=${kubectl}
  kubectl get sbx -w
  kubectl describe sandbox hello
${realNode ? "  kubectl logs hello -c sandbox        # what hello printed\n  kubectl get pods -o wide             # on node local-node\n" : ""}${useDocker ? "  docker ps --filter label=sandboxing.dev/owner=dev\n" : ""}${
  server ? "  curl -s localhost:8080/metrics | grep sandbox_operator_\n" : ""
}
Ctrl-C stops everything${useDocker ? " and removes the sandboxes' containers" : realNode ? " and removes the node (its containers, cgroups, network)" : ""}.
`);

const stop = async () => {
  if (useDocker) {
    // Let the finalizers remove the containers while the controller still runs.
    await kube("delete", "sandboxes", "--all", "--all-namespaces", "--wait=true", "--timeout=60s");
  }
  await controller.stop();
  await server?.close();
  await node?.stop();
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
