// `sandbox-operator crds`: the CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
import { stringify } from "yaml";
import { sandboxCRD } from "../api/crd/crd.js";

export function printCrds(): number {
  process.stdout.write(stringify(sandboxCRD(), { lineWidth: 0 }));
  return 0;
}
