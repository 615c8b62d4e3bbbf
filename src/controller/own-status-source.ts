// A cache that shows this process's own status writes before their watch
// events: another controller reading the objects a StatusWriter writes (the
// claim controller reading the Sandbox controller's Sandboxes) learns of a
// status the moment it is decided, not a write, a watch event and a cache
// update later.
//
// - While a write is in flight (`sending`), get() and list() show the object
//   with the status being written, and handlers get an update at once: the
//   reader's own write can go out beside it instead of after it.
// - `written`: the object the apiserver returned, until the watch brings it.
// - `failed`: nothing was stored. The cached object shows again and handlers
//   get an update, so whatever a reader decided from the status that never
//   landed is decided again from what is stored. The next write from the same
//   version is shown only once it is answered (no flip-flop on each retry).
//
// Only while the cache still holds the version the write started from: once
// the cache moves on (the write's own event, or anyone else's change), the
// cache is the truth again. Generic: it knows nothing of the objects' kind.
//
// For a reader that reports what the writer has decided (a claim is Ready
// when its sandbox is being written Ready, and goes back if that write is
// refused), not for one that spends a budget on it: a reader that deletes or
// holds back objects by what they say (the warm pool's roll, which must count
// only replacements whose Ready is stored) reads the plain cache.
import { keyOf } from "../kube/object-key.js";
import type { EventHandler, KubeObject, ObjectSource } from "./informer.js";
import type { StatusWriteFeed, StatusWriteNotice } from "./status-writer.js";

/** How long a write's view stands in for the cache at most (a missed watch event ends it here). */
export const OWN_STATUS_MAX_MS = 30_000;

/** Keys whose failed write is remembered (one entry each, only until the next write). */
const FAILED_MAX = 10_000;

interface Shown<T> {
  /** The cached version the write started from. */
  from: string;
  view: T;
  atMs: number;
  /** While a write is in flight: what was shown before it (restored if it fails). */
  prior?: Shown<T>;
}

export function withOwnStatusWrites<T extends KubeObject & { status?: unknown }>(
  source: ObjectSource<T>,
  feed: StatusWriteFeed,
  now: () => number = Date.now,
): ObjectSource<T> {
  const shown = new Map<string, Shown<T>>();
  const handlers: EventHandler<T>[] = [];
  /** Key -> the version whose last write failed (bounded: the oldest go first). */
  const failed = new Map<string, string>();
  const remember = (key: string, rv: string) => {
    failed.delete(key);
    failed.set(key, rv);
    if (failed.size > FAILED_MAX) failed.delete(failed.keys().next().value!);
  };

  /** The object as this process knows it: the cache, or our write on top of the version it started from. */
  const overlay = (cached: T, key = keyOf(cached)): T => {
    const s = shown.get(key);
    if (!s) return cached;
    if (s.from === cached.metadata?.resourceVersion && now() - s.atMs < OWN_STATUS_MAX_MS)
      return s.view;
    shown.delete(key); // the cache moved on
    return cached;
  };
  const tell = (obj: T, old: T) => {
    for (const h of handlers) h.update?.(obj, old);
  };

  const unlisten = feed.listen((n: StatusWriteNotice) => {
    const cached = source.get(n.key);
    const before = cached && overlay(cached, n.key);
    // A write from what is shown here: the cache's version, or our previous
    // write's result that the cache has not caught up with. From anything
    // else (the cache moved on; a version never seen) nothing is shown.
    if (
      !cached ||
      !before ||
      !n.resourceVersion ||
      before.metadata?.resourceVersion !== n.resourceVersion
    )
      return;
    const from = cached.metadata!.resourceVersion!;
    const at = now();
    if (n.type === "sending") {
      // A version whose write the apiserver refused is not shown ahead of its
      // next write's answer: a refusal that repeats (an admission rule, a
      // full disk) would otherwise flip a reader back and forth at each retry.
      if (failed.get(n.key) === n.resourceVersion) return;
      const prior = shown.get(n.key);
      shown.set(n.key, { from, view: { ...before, status: n.status }, atMs: at, prior });
    } else if (n.type === "written" && n.written?.metadata?.resourceVersion) {
      failed.delete(n.key);
      shown.set(n.key, { from, view: n.written as T, atMs: at });
    } else {
      // Refused, or a write whose result we cannot show: back to what is
      // stored (our previous write's result, if the cache still lags it).
      if (n.type === "failed") remember(n.key, n.resourceVersion);
      const prior = shown.get(n.key)?.prior;
      if (prior) shown.set(n.key, prior);
      else shown.delete(n.key);
    }
    const after = overlay(cached, n.key);
    if (after !== before) tell(after, before);
  });

  return {
    on: (handler) => {
      handlers.push(handler);
      source.on(handler);
    },
    start: () => source.start(),
    stop: () => {
      unlisten();
      shown.clear();
      return source.stop();
    },
    hasSynced: () => source.hasSynced(),
    upToDate: (signal) => source.upToDate(signal),
    problems: () => source.problems(),
    get: (key) => {
      const cached = source.get(key);
      return cached && overlay(cached, key);
    },
    list: () => (shown.size ? source.list().map((o) => overlay(o)) : source.list()),
  };
}
