// The versions of objects this controller wrote itself, so that the watch
// event each write produces (its "echo") need not reconcile the owner again.
//
// The reconcile that wrote an object had the object the write returned in
// hand and decided from it; the echo carries that very version (a
// resourceVersion names one version of one object), so reconciling again for
// it decides the same and writes nothing. Counted in a lifecycle run
// (bench/results/scale/README.md) the Pod's and the NetworkPolicy's ADDED
// echoes were 2 of ~4 reconciles per sandbox. Only an exact match is skipped:
// any other version of the object (someone else's change, an older event still
// in flight) is no echo and reconciles as before. The informers are untouched:
// they cache every event, and their other readers see every one.
//
// Not for status writes: some decisions take their next step from the echo of
// the status they wrote (src/sandbox/decide.ts, a stalled sandbox's removal).
import { keyOf } from "../kube/object-key.js";

interface Written {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/**
 * How long a write waits for its echo. The event normally lands within
 * milliseconds; one that never comes (a watch that resumed past it, an object
 * deleted meanwhile) leaves an entry that can match nothing else, dropped then.
 */
const ECHO_WAIT_MS = 120_000;
/** Entries kept at most (the oldest are dropped first: a miss only costs a reconcile). */
export const OWN_WRITES_MAX = 20_000;

export class OwnWrites {
  /** Object key -> the version our last write produced, in write order. */
  private readonly versions = new Map<string, { resourceVersion: string; atMs: number }>();

  constructor(private readonly max = OWN_WRITES_MAX) {}

  /** Remember the object a create, replace or patch returned. */
  record(obj: Written | undefined): void {
    const resourceVersion = obj?.metadata?.resourceVersion;
    if (!obj?.metadata?.name || !resourceVersion) return;
    const key = keyOf(obj);
    const now = Date.now();
    this.versions.delete(key); // re-inserted last: the map stays in write order
    this.versions.set(key, { resourceVersion, atMs: now });
    for (const [k, v] of this.versions) {
      if (this.versions.size <= this.max && now - v.atMs < ECHO_WAIT_MS) break;
      this.versions.delete(k);
    }
  }

  /**
   * Whether `obj` is exactly the version our last write of it produced. A match
   * is consumed: the same version seen again (a re-list) reconciles as usual.
   */
  isEcho(obj: Written): boolean {
    const resourceVersion = obj.metadata?.resourceVersion;
    if (!resourceVersion || !obj.metadata?.name) return false;
    const key = keyOf(obj);
    const written = this.versions.get(key);
    if (written?.resourceVersion !== resourceVersion) return false;
    this.versions.delete(key);
    return true;
  }

  get size(): number {
    return this.versions.size;
  }
}
