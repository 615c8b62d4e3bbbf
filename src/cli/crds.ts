// `sandbox-operator crds`: the CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
import { stringify } from "yaml";
import { CRDS } from "../api/crd/all.js";

export function printCrds(): number {
  process.stdout.write(CRDS.map((make) => stringify(make(), { lineWidth: 0 })).join("---\n"));
  return 0;
}
