// A policy file's text -> the compiled policy. Both backends write JSON, so JSON
// is tried first and the YAML parser (for files people write by hand) is loaded
// only when needed: it stays out of the memory of every sidecar.
import { type CompiledPolicy, parsePolicy } from "./compile.js";

export async function policyFromText(text: string): Promise<CompiledPolicy> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // A module of ours around the package: the bundle loads a CommonJS package
    // lazily only through a static import in a lazily imported module.
    const { parseYaml } = await import("./yaml.js");
    raw = parseYaml(text);
  }
  return parsePolicy(raw ?? {});
}
