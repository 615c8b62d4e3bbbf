// Start the test control plane with a real node by hand, for debugging: prints
// the kubeconfig and the node's start-up timings, runs until Ctrl-C, then stops
// the node and says whether anything was left behind.
//   npx tsx test/support/node/start.ts [--images] [--exit]
import { startControlPlane } from "../control-plane.js";
import { OPERATOR_IMAGE, SANDBOX_IMAGE } from "../docker.js";
import { leaveSignalsToCaller } from "../processes.js";
import { NODE_CONTROLLERS, startNode } from "./index.js";

leaveSignalsToCaller();
const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  crds: true,
  kubeletClient: true,
  extraControllers: NODE_CONTROLLERS,
});
const node = await startNode(cp, {
  images: process.argv.includes("--images") ? [OPERATOR_IMAGE, SANDBOX_IMAGE] : [],
}).catch(async (err) => {
  await cp.stop();
  throw err;
});
console.log(`node ${node.name} Ready in ${node.timings.total} ms ${JSON.stringify(node.timings)}`);
console.log(`export KUBECONFIG=${cp.kubeconfigPath}`);
const stop = async () => {
  const began = performance.now();
  await node.stop();
  console.log(
    `node stopped in ${Math.round(performance.now() - began)} ms; left behind: ${JSON.stringify(node.leftovers())}`,
  );
  await cp.stop();
  process.exit(0);
};
if (process.argv.includes("--exit")) await stop();
process.once("SIGINT", () => void stop());
process.once("SIGTERM", () => void stop());
