import { join } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { installCRDs as install, readCRDs } from "../../src/api/crd/install.js";
import { REPO_ROOT } from "./paths.js";

/** Install the repository's generated CRDs (crds/). */
export function installCRDs(kc: k8s.KubeConfig): Promise<void> {
  return install(kc, readCRDs(join(REPO_ROOT, "crds")));
}
