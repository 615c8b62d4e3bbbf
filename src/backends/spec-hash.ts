// A short, stable hash of a desired spec, recorded on what a backend creates:
// a different hash means the object no longer matches the Sandbox and is rebuilt.
// Keys are sorted first, so the same spec always hashes the same.
import { createHash } from "node:crypto";
import { configure } from "safe-stable-stringify";

const stableStringify = configure({ deterministic: true });

export function specHash(spec: unknown): string {
  return createHash("sha256")
    .update(stableStringify(spec) ?? "")
    .digest("hex")
    .slice(0, 16);
}
