// Whether an object read back from the apiserver still says everything we asked
// for. The apiserver adds defaults (clusterIP, sessionAffinity, ...), so equality
// is too strict; containment is exactly "nobody changed what we own".

export function containsAll(actual: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  // The apiserver drops empty lists (ingress: [] reads back as absent).
  if (Array.isArray(desired) && desired.length === 0 && actual === undefined) return true;
  if (desired === null || typeof desired !== "object") return actual === desired;
  if (Array.isArray(desired)) {
    return (
      Array.isArray(actual) &&
      actual.length === desired.length &&
      desired.every((d, i) => containsAll(actual[i], d))
    );
  }
  if (actual === null || typeof actual !== "object" || Array.isArray(actual)) return false;
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containsAll(a[k], v));
}
