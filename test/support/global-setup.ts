// One control plane for the whole integration run: tests isolate themselves in
// their own namespaces. Start-up timings are printed so regressions are visible.
import type { TestProject } from "vitest/node";
import { startControlPlane } from "./control-plane.js";

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfigPath: string;
    auditLogPath: string;
    k8sBinDir: string;
  }
}

export default async function setup(project: TestProject) {
  const started = performance.now();
  const cp = await startControlPlane({
    controllerManager: true,
    scheduler: true,
    kwok: true,
    crds: true,
  });
  const total = Math.round(performance.now() - started);
  console.log(`control plane up in ${total} ms (${JSON.stringify(cp.timings)}) at ${cp.server}`);
  project.provide("kubeconfigPath", cp.kubeconfigPath);
  project.provide("auditLogPath", cp.auditLogPath);
  project.provide("k8sBinDir", cp.binDir);
  return () => cp.stop();
}
