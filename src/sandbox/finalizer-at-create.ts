// The cleanup finalizer, set by whoever creates a Sandbox on a backend that
// needs it (a warm pool, a claim's cold start): the Sandbox controller adds it
// itself otherwise, in a write of its own before anything else is done, and a
// pool refill or a burst of cold claims pays that write for every sandbox.
// Setting it at create is the same object the controller would make, one
// write sooner; the controller still adds it to a Sandbox made without it.
import type { BackendName } from "../backends/backend.js";
import { SANDBOX_FINALIZER } from "./decide.js";

/**
 * The backends whose objects Kubernetes garbage collection cannot reach, so
 * that deleting a Sandbox waits for the controller to remove them (each
 * backend's `needsFinalizer`: docker's containers live outside the cluster; a
 * Pod is owned by its Sandbox).
 */
export const FINALIZED_BACKENDS: ReadonlySet<BackendName> = new Set(["docker"]);

/** metadata.finalizers for a new Sandbox on `backend`, or undefined when it needs none. */
export function finalizersAtCreate(backend: BackendName): string[] | undefined {
  return FINALIZED_BACKENDS.has(backend) ? [SANDBOX_FINALIZER] : undefined;
}

/** The same as a new Sandbox's metadata fields: `{ finalizers }`, or nothing when it needs none. */
export function withFinalizers(backend: BackendName): { finalizers?: string[] } {
  const finalizers = finalizersAtCreate(backend);
  return finalizers ? { finalizers } : {};
}
