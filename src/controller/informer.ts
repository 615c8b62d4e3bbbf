// An informer: list, then watch from the list's resourceVersion, keeping a cache
// keyed "namespace/name" and calling handlers on every change.
//
// Built on client-node's low-level Watch rather than its ListWatch/makeInformer
// because we need what those do not give:
// - trimming each object before it is cached: managedFields and the
//   last-applied-configuration annotation are often most of an object's bytes
//   and no controller reads them, so dropping them bounds memory;
// - control over restarts: "410 Gone" (our resourceVersion was compacted away)
//   re-lists and diffs the result against the cache, so handlers see a delete
//   for every object that vanished meanwhile and an update for every change;
//   any other error or end of the watch restarts it with backoff; and a watch
//   that delivers nothing, not even a bookmark, for the watchdog period is
//   presumed dead (a half-open connection) and restarted;
// - recovery from an apiserver outage within a second of its return: an
//   apiserver that does not answer (connection refused, reset, 502/503/504)
//   costs nothing to retry, so those failures retry on a short capped backoff,
//   while answers that refuse (429, 5xx, 403) back off to the long cap, and
//   problems() says which watches are down meanwhile (for /readyz).
import type * as k8s from "@kubernetes/client-node";
import { keyOf } from "../kube/object-key.js";
import type { Logger } from "../observability/logger.js";
import { Backoff, type BackoffOptions, sleep } from "./backoff.js";
import { apiStatus, errorMessage } from "./errors.js";
import { listRaw, METADATA_ONLY, watchRaw } from "./raw-request.js";

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
}

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string };
}

/** Lists one scope (a namespace, or all when undefined); must return plain JSON, as watch events are. */
export type ListFunction<T> = (scope: {
  namespace?: string;
  labelSelector?: string;
  signal: AbortSignal;
}) => Promise<ListResult<T>>;

export interface InformerOptions<T> {
  kubeConfig: k8s.KubeConfig;
  /** Group-version path, e.g. "/api/v1" or "/apis/sandboxing.dev/v1alpha1". */
  apiPath: string;
  /** Plural resource name, e.g. "configmaps". */
  resource: string;
  /** Namespaces to watch; empty or absent means all. */
  namespaces?: string[];
  labelSelector?: string;
  /** Cache only metadata (PartialObjectMetadata: no spec, no status); lists and watches carry no more. */
  metadataOnly?: boolean;
  /**
   * Reduce each object to what its readers use before it is cached (after the
   * generic trim). Handlers and get() see only the result, so it must keep
   * every field any of them reads.
   */
  transform?(obj: T): T;
  /** How to list; by default a paginated GET of the collection. */
  list?: ListFunction<T>;
  /** Restart a watch that delivered nothing (no event, no bookmark) for this long (default 5 min). */
  watchdogMs?: number;
  /** Delays between failed list/watch attempts (default 200 ms doubling to 30 s). */
  backoff?: Omit<BackoffOptions, "random">;
  /** Delays while the apiserver does not answer at all (default 200 ms doubling to 1 s). */
  unreachableBackoff?: Omit<BackoffOptions, "random">;
  log: Logger;
}

export interface EventHandler<T> {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
}

/** What a controller needs of a cache fed by watches: an Informer, or a ShardedInformer. */
export interface ObjectSource<T> {
  on(handler: EventHandler<T>): void;
  start(): void;
  stop(): Promise<void>;
  hasSynced(): boolean;
  upToDate(signal: AbortSignal): Promise<void>;
  problems(): string[];
  get(key: string): T | undefined;
  list(): T[];
}

/** Why one watch ended. */
type WatchEnd = "gone" | "closed" | "error" | "watchdog" | "stopped";

/** Longest a new leader waits for a down watch before reconciling from the cache anyway. */
const UP_TO_DATE_WAIT_MS = 30_000;

/**
 * The apiserver did not answer at all (no HTTP status: refused, reset, DNS,
 * TLS), or a proxy in front of it says it is not there: retrying costs the
 * apiserver nothing, so it can be frequent.
 */
export function isUnreachable(err: unknown): boolean {
  const status = apiStatus(err);
  return status === undefined || status === 502 || status === 503 || status === 504;
}

// One key for the whole operator (re-exported for the controller and its tests).
export { keyOf };

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** Drop what a controller never reads but every cached object pays for. Mutates and returns `obj`. */
export function trim<T extends KubeObject>(obj: T): T {
  if (obj.metadata) {
    delete obj.metadata.managedFields;
    if (obj.metadata.annotations) delete obj.metadata.annotations[LAST_APPLIED];
  }
  return obj;
}

export class Informer<T extends KubeObject> implements ObjectSource<T> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: EventHandler<T>[] = [];
  private readonly scopes: (string | undefined)[];
  private readonly syncedScopes = new Set<string | undefined>();
  /** Scopes whose last list or watch attempt failed (cleared when a watch is established again). */
  private readonly down = new Map<string | undefined, { sinceMs: number; err: string }>();
  private readonly stopping = new AbortController();
  private readonly log: Logger;
  private readonly lister: ListFunction<T>;
  private running: Promise<void>[] | undefined;
  private markSynced!: () => void;
  /** Resolves once every scope has been listed. */
  readonly synced = new Promise<void>((resolve) => {
    this.markSynced = resolve;
  });
  /** What happened so far, for tests and debugging. */
  readonly stats = { lists: 0, watches: 0, relistsAfterGone: 0, watchdogRestarts: 0, errors: 0 };

  constructor(private readonly opts: InformerOptions<T>) {
    this.scopes = opts.namespaces?.length ? [...new Set(opts.namespaces)] : [undefined];
    this.log = opts.log.child({ informer: opts.resource });
    this.lister =
      opts.list ??
      (({ namespace, labelSelector, signal }) =>
        listRaw<T>(opts.kubeConfig, this.collectionPath(namespace), {
          labelSelector,
          signal,
          accept: opts.metadataOnly ? METADATA_ONLY.list : undefined,
        }));
  }

  /** Register handlers; those added after start see only later changes. */
  on(handler: EventHandler<T>): void {
    this.handlers.push(handler);
  }

  start(): void {
    this.running ??= this.scopes.map((ns) => this.run(ns));
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.running ?? []);
  }

  hasSynced(): boolean {
    return this.syncedScopes.size === this.scopes.length;
  }

  /** One line per scope whose watch is down (the cache may be stale), with since when and why. */
  problems(): string[] {
    const now = Date.now();
    return [...this.down].map(
      ([ns, { sinceMs, err }]) =>
        `${this.opts.resource}${ns ? ` in ${ns}` : ""}: watch down for ${Math.round((now - sinceMs) / 1000)}s (${err})`,
    );
  }

  /**
   * Resolves once every scope has listed and is watching (none down), or
   * `signal` aborts, or after a bounded wait (a watch that stays down, e.g.
   * for want of RBAC, must not stop a leader for good; /readyz says why).
   */
  async upToDate(signal: AbortSignal): Promise<void> {
    const deadline = performance.now() + UP_TO_DATE_WAIT_MS;
    // A stopped informer never catches up: whoever waits on it (a shard gained
    // while another shard's informer was dropped unsynced) must not wait forever.
    while (
      !signal.aborted &&
      !this.stopping.signal.aborted &&
      !(this.hasSynced() && this.down.size === 0)
    ) {
      if (this.hasSynced() && performance.now() > deadline) {
        this.log.warn({ problems: this.problems() }, "watches still down; working from the cache");
        return;
      }
      await sleep(50, signal);
    }
  }

  private markDown(namespace: string | undefined, err: unknown): void {
    if (!this.down.has(namespace))
      this.down.set(namespace, { sinceMs: Date.now(), err: errorMessage(err) });
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  private collectionPath(namespace: string | undefined): string {
    const ns = namespace ? `/namespaces/${namespace}` : "";
    return `${this.opts.apiPath}${ns}/${this.opts.resource}`;
  }

  /** List, then watch, forever (until stopped), for one scope. */
  private async run(namespace: string | undefined): Promise<void> {
    const log = this.log.child({ namespace: namespace ?? "*" });
    const backoff = new Backoff(this.opts.backoff ?? { baseMs: 200, maxMs: 30_000 });
    const unreachable = new Backoff(this.opts.unreachableBackoff ?? { baseMs: 200, maxMs: 1000 });
    const signal = this.stopping.signal;
    let resourceVersion: string | undefined; // undefined: (re-)list first
    while (!signal.aborted) {
      let healthy = false;
      let failure: { err: unknown } | undefined;
      try {
        resourceVersion ??= await this.relist(namespace, signal);
        const watched = await this.watch(namespace, resourceVersion, log);
        resourceVersion = watched.resourceVersion;
        healthy = watched.delivered > 0;
        if (watched.end === "error") failure = { err: watched.err };
        if (watched.end === "gone") {
          this.stats.relistsAfterGone++;
          log.info("watch expired (410 Gone); re-listing");
          resourceVersion = undefined;
        } else if (watched.end === "watchdog") {
          this.stats.watchdogRestarts++;
          log.warn({ watchdogMs: this.watchdogMs }, "watch silent too long; restarting it");
        }
      } catch (err) {
        if (signal.aborted) return;
        this.stats.errors++;
        failure = { err };
        log.warn({ err: String(err) }, "list failed");
      }
      if (failure) this.markDown(namespace, failure.err);
      if (healthy) {
        backoff.reset();
        unreachable.reset();
      }
      // A watch that delivered something resumes at once; repeated failures back
      // off, briefly while the apiserver is simply not there.
      if (!healthy) {
        const delay = failure && isUnreachable(failure.err) ? unreachable.next() : backoff.next();
        await sleep(delay, signal);
      }
    }
  }

  private prepare(obj: T): T {
    const trimmed = trim(obj);
    return this.opts.transform ? this.opts.transform(trimmed) : trimmed;
  }

  private get watchdogMs(): number {
    return this.opts.watchdogMs ?? 300_000;
  }

  /** List one scope and bring the cache in line, emitting what changed. Returns the list's resourceVersion. */
  private async relist(namespace: string | undefined, signal: AbortSignal): Promise<string> {
    this.stats.lists++;
    const { items, metadata } = await this.lister({
      namespace,
      labelSelector: this.opts.labelSelector,
      signal,
    });
    const fresh = new Map<string, T>();
    for (const obj of items) if (obj?.metadata?.name) fresh.set(keyOf(obj), this.prepare(obj));
    for (const [key, old] of this.cache) {
      if (namespace !== undefined && old.metadata?.namespace !== namespace) continue;
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit("delete", old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit("add", obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
        this.emit("update", obj, old);
      }
    }
    this.syncedScopes.add(namespace);
    if (this.hasSynced()) this.markSynced();
    return metadata.resourceVersion ?? "";
  }

  /** One watch from `resourceVersion` until it ends, for whatever reason. */
  private watch(
    namespace: string | undefined,
    resourceVersion: string,
    log: Logger,
  ): Promise<{ end: WatchEnd; resourceVersion: string; delivered: number; err?: unknown }> {
    this.stats.watches++;
    const signal = this.stopping.signal;
    let rv = resourceVersion;
    let delivered = 0;
    let finished = false;
    let request: AbortController | undefined;
    let watchdog: NodeJS.Timeout | undefined;

    return new Promise((resolve) => {
      const finish = (end: WatchEnd, err?: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(watchdog);
        signal.removeEventListener("abort", onStop);
        request?.abort();
        if (end === "error") log.warn({ err: String(err) }, "watch failed; restarting it");
        resolve({ end, resourceVersion: rv, delivered, err });
      };
      const onStop = () => finish("stopped");
      const feedWatchdog = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => finish("watchdog"), this.watchdogMs);
        watchdog.unref();
      };
      if (signal.aborted) return finish("stopped");
      signal.addEventListener("abort", onStop, { once: true });
      feedWatchdog();

      const onEvent = (type: string, obj: unknown) => {
        // Events can trail an abort; after a re-list they would be stale.
        if (finished) return;
        feedWatchdog();
        try {
          if (type === "ERROR") return finish(isGone(obj) ? "gone" : "error", statusMessage(obj));
          const o = obj as T;
          const objRv = o?.metadata?.resourceVersion;
          if (type === "BOOKMARK") {
            if (objRv) rv = objRv;
            delivered++;
            return;
          }
          if (!o?.metadata?.name || !["ADDED", "MODIFIED", "DELETED"].includes(type)) {
            log.warn({ type }, "ignoring a malformed watch event");
            return;
          }
          if (objRv) rv = objRv;
          delivered++;
          this.apply(type, this.prepare(o));
        } catch (err) {
          // A bad event must never take the informer (or the process) down.
          log.error({ err: String(err), type }, "failed to handle a watch event");
        }
      };
      const onDone = (err: unknown) => {
        if (!err) return finish("closed");
        finish(apiStatus(err) === 410 ? "gone" : "error", err);
      };

      const controller = new AbortController();
      request = controller;
      watchRaw(this.opts.kubeConfig, this.collectionPath(namespace), {
        query: {
          resourceVersion: rv,
          allowWatchBookmarks: true,
          labelSelector: this.opts.labelSelector,
          // Server-side end, jittered so many informers do not restart in step.
          timeoutSeconds: 240 + Math.floor(Math.random() * 120),
        },
        signal: controller.signal,
        accept: this.opts.metadataOnly ? METADATA_ONLY.watch : undefined,
        onEvent,
        // The apiserver answered the watch: this scope is live again.
        onConnected: () => {
          if (!finished) this.down.delete(namespace);
        },
      }).then(
        () => onDone(undefined),
        (err) => onDone(err),
      );
    });
  }

  private apply(type: string, obj: T): void {
    const key = keyOf(obj);
    const old = this.cache.get(key);
    if (type === "DELETED") {
      this.cache.delete(key);
      this.emit("delete", old ?? obj);
    } else {
      this.cache.set(key, obj);
      if (!old) this.emit("add", obj);
      // A replay of what we have (a watch resumed from an older version) is no change.
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
        this.emit("update", obj, old);
      }
    }
  }

  private emit(event: "add" | "update" | "delete", obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (event === "update") h.update?.(obj, old!);
        else h[event]?.(obj);
      } catch (err) {
        this.log.error({ err: String(err), event, key: keyOf(obj) }, "event handler failed");
      }
    }
  }
}

function isGone(status: unknown): boolean {
  const s = status as { code?: number; reason?: string } | undefined;
  return s?.code === 410 || s?.reason === "Expired" || s?.reason === "Gone";
}

function statusMessage(status: unknown): string {
  return (status as { message?: string } | undefined)?.message ?? JSON.stringify(status);
}
