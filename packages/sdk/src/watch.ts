// The SDK's waits (a Sandbox becoming Ready, a claim being served) follow
// their objects by watch: the client learns of a change the moment the
// apiserver records it, where a poll pays up to its period and a request per
// period. One shape for every wait: sources say "something may have
// changed", a check judges the state the caller keeps, and until() settles
// on the check's answer or the timeout, stopping every source on every path.
//
// client-node's Watch, not the operator's informer: one object (or a handful
// by label) for seconds needs no cache, no watchdog and no sharding, and the
// SDK already depends on client-node.
import * as k8s from "@kubernetes/client-node";
import { backoffDelay } from "../../../src/controller/backoff.js";

/** An object as the apiserver sends it (plain JSON in lists and watch events alike). */
export interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string };
}

export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** Something that calls `changed` whenever what it follows may have changed, until stopped. */
export type Source = (changed: () => void) => () => void;

export interface WatchSourceOptions<T extends KubeObject> {
  kubeConfig: k8s.KubeConfig;
  group: string;
  version: string;
  plural: string;
  namespace: string;
  fieldSelector?: string;
  labelSelector?: string;
  /**
   * Watch from this version (a create's or a write's answer): no later change
   * is missed and no list is needed. Absent: list first, hand over what is
   * there, and watch from the list's version.
   */
  resourceVersion?: string;
  /** Objects the caller believes exist: the first list reports those it lacks as DELETED. */
  known?: T[];
  onChange(type: ChangeType, object: T): void;
}

/**
 * Delays between failed attempts: short first (an apiserver blip), capped (a
 * persistent refusal), jittered (backoffDelay) so clients that lost the same
 * apiserver do not come back in step.
 */
export const RETRY_MIN_MS = 50;
export const RETRY_MAX_MS = 1000;

/**
 * Follows the objects of one collection that match the selectors: watch;
 * when a watch ends cleanly (the apiserver closes watches after a while, and
 * client-node's after 30 s of silence) watch again from the last version
 * seen; when it fails or the version is gone (410), list again, hand over
 * what changed meanwhile, and watch from there. Failures retry with capped
 * backoff, so a client that may not watch still converges by listing.
 */
export function watchSource<T extends KubeObject>(o: WatchSourceOptions<T>): Source {
  return (changed) => {
    const api = o.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    const path = `/apis/${o.group}/${o.version}/namespaces/${o.namespace}/${o.plural}`;
    const known = new Map<string, T>();
    for (const k of o.known ?? []) if (k.metadata?.name) known.set(k.metadata.name, k);
    let version = o.resourceVersion;
    let stopped = false;
    let watch: AbortController | undefined;
    let retry: NodeJS.Timeout | undefined;
    let failures = 0;
    let attempt = 0;

    const deliver = (type: ChangeType, obj: T) => {
      const name = obj.metadata?.name;
      if (!name) return;
      if (type === "DELETED") known.delete(name);
      else known.set(name, obj);
      try {
        o.onChange(type, obj);
      } finally {
        changed();
      }
    };

    const list = async () => {
      const res = (await api.listNamespacedCustomObject({
        group: o.group,
        version: o.version,
        namespace: o.namespace,
        plural: o.plural,
        ...(o.fieldSelector ? { fieldSelector: o.fieldSelector } : {}),
        ...(o.labelSelector ? { labelSelector: o.labelSelector } : {}),
      })) as { items?: T[]; metadata?: { resourceVersion?: string } };
      if (stopped) return;
      const items = res.items ?? [];
      const names = new Set(items.map((i) => i.metadata?.name));
      for (const [name, old] of known) if (!names.has(name)) deliver("DELETED", old);
      for (const item of items) {
        const prev = item.metadata?.name ? known.get(item.metadata.name) : undefined;
        deliver(prev ? "MODIFIED" : "ADDED", item);
      }
      // Nothing matched and nothing was known: still a state the check may judge.
      if (!items.length) changed();
      version = res.metadata?.resourceVersion;
    };

    const again = (relist: boolean, failed: boolean) => {
      if (stopped) return;
      failures = failed ? failures + 1 : 0;
      const delay = failed
        ? backoffDelay(failures - 1, { baseMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS })
        : 0;
      retry = setTimeout(() => void start(relist), delay);
    };

    const start = async (relist: boolean) => {
      retry = undefined;
      try {
        if (relist || !version) await list();
      } catch {
        again(true, true);
        return;
      }
      if (stopped) return;
      const mine = ++attempt;
      let gone = false;
      const pending = new k8s.Watch(o.kubeConfig).watch(
        path,
        {
          resourceVersion: version,
          allowWatchBookmarks: true,
          ...(o.fieldSelector ? { fieldSelector: o.fieldSelector } : {}),
          ...(o.labelSelector ? { labelSelector: o.labelSelector } : {}),
        },
        (type: string, obj: T & { code?: number }) => {
          if (stopped) return;
          if (type === "ERROR") {
            // A Status, typically 410 Gone: our version was compacted away.
            gone = true;
            return;
          }
          failures = 0;
          if (obj?.metadata?.resourceVersion) version = obj.metadata.resourceVersion;
          if (type === "ADDED" || type === "MODIFIED" || type === "DELETED") deliver(type, obj);
        },
        (err: unknown) => {
          if (mine === attempt) watch = undefined;
          // client-node ends a watch silent for 30 s with a TimeoutError: a quiet object, not a failure.
          const failed = gone || (!!err && (err as { name?: string }).name !== "TimeoutError");
          again(failed, failed);
        },
      );
      pending.then(
        (ctl) => {
          // Stopped while the request was on its way: end it the moment it exists.
          if (stopped) ctl.abort();
          else if (mine === attempt && !ctl.signal.aborted) watch = ctl;
        },
        () => again(true, true),
      );
    };

    if (version) changed();
    void start(false);
    return () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      watch?.abort();
    };
  };
}

/** A source for where no watch is possible (through the gateway): read now and every `everyMs`. */
export function pollSource(read: () => Promise<void>, everyMs: number): Source {
  return (changed) => {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      try {
        await read();
      } catch {
        // The next read tries again; the wait's timeout bounds it all.
      }
      if (stopped) return;
      changed();
      timer = setTimeout(tick, everyMs);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  };
}

/**
 * What a check says: undefined, not yet (the next change asks again);
 * `{value}`, done; `{retryAfterMs}`, ask again after that long even without
 * a change (e.g. the agent did not answer yet). A check that throws fails
 * the wait.
 */
export type Check<R> = { value: R } | { retryAfterMs: number } | undefined;

export interface UntilOptions<R> {
  sources: Source[];
  check(): Check<R> | Promise<Check<R>>;
  timeoutMs: number;
  onTimeout(): Error;
}

/**
 * Runs `check` whenever a source reports a change (one check at a time; a
 * change during a check runs it again after), and settles with its value,
 * its error or onTimeout()'s. Sources are stopped and timers cleared on
 * every path.
 */
export function until<R>(o: UntilOptions<R>): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    let running = false;
    let dirty = false;
    let retry: NodeJS.Timeout | undefined;
    const stops: (() => void)[] = [];
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (retry) clearTimeout(retry);
      for (const stop of stops) stop();
      settle();
    };
    const timer = setTimeout(() => finish(() => reject(o.onTimeout())), o.timeoutMs);
    const run = async () => {
      if (settled) return;
      if (running) {
        dirty = true;
        return;
      }
      running = true;
      try {
        do {
          dirty = false;
          if (retry) clearTimeout(retry);
          retry = undefined;
          const c = await o.check();
          if (settled) return;
          if (c && "value" in c) {
            const value = c.value;
            finish(() => resolve(value));
            return;
          }
          if (c && !dirty) retry = setTimeout(() => void run(), c.retryAfterMs);
        } while (dirty);
      } catch (err) {
        finish(() => reject(err));
      } finally {
        running = false;
      }
    };
    for (const source of o.sources) {
      const stop = source(() => void run());
      // A check may settle while a source starts (it reports at once).
      if (settled) stop();
      else stops.push(stop);
    }
  });
}
