// Start the test control plane by hand, for debugging: prints the kubeconfig
// path and runs until Ctrl-C.   npx tsx test/support/start.ts
import { startControlPlane } from "./control-plane.js";

const cp = await startControlPlane({
  controllerManager: true,
  scheduler: true,
  kwok: true,
  crds: true,
});
console.log(
  `control plane up (${JSON.stringify(cp.timings)})\nexport KUBECONFIG=${cp.kubeconfigPath}`,
);
process.once("SIGINT", () => void cp.stop().then(() => process.exit(0)));
process.once("SIGTERM", () => void cp.stop().then(() => process.exit(0)));
