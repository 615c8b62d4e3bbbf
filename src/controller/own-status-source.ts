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
//   landed is decided again from what is stored.
//
// Only while the cache still holds the version the write started from: once
// the cache moves on (the write's own event, or anyone else's change), the
// cache is the truth again. Generic: it knows nothing of the objects' kind.
import { keyOf } from "../kube/object-key.js";
import type { EventHandler, KubeObject, ObjectSource } from "./informer.js";
import type { StatusWriteFeed, StatusWriteNotice } from "./status-writer.js";

/** How long a write's view stands in for the cache at most (a missed watch event ends it here). */
export const OWN_STATUS_MAX_MS = 30_000;

interface Shown<T> {
  /** The cached version the write started from. */
  from: string;
  view: T;
  atMs: number;
}

export function withOwnStatusWrites<T extends KubeObject & { status?: unknown }>(
  source: ObjectSource<T>,
  feed: StatusWriteFeed,
  now: () => number = Date.now,
): ObjectSource<T> {
  const shown = new Map<string, Shown<T>>();
  const handlers: EventHandler<T>[] = [];

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

  feed.listen((n: StatusWriteNotice) => {
    const cached = source.get(n.key);
    // A write from a version the cache no longer holds (or never held) changes nothing shown here.
    if (!cached || !n.resourceVersion || cached.metadata?.resourceVersion !== n.resourceVersion) {
      shown.delete(n.key);
      return;
    }
    const before = overlay(cached, n.key);
    if (n.type === "sending") {
      shown.set(n.key, {
        from: n.resourceVersion,
        view: { ...cached, status: n.status },
        atMs: now(),
      });
    } else if (n.type === "written" && n.written?.metadata?.resourceVersion) {
      shown.set(n.key, { from: n.resourceVersion, view: n.written as T, atMs: now() });
    } else {
      // Failed, or a write whose result we cannot show: back to what is stored.
      shown.delete(n.key);
    }
    tell(overlay(cached, n.key), before);
  });

  return {
    on: (handler) => {
      handlers.push(handler);
      source.on(handler);
    },
    start: () => source.start(),
    stop: () => source.stop(),
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
