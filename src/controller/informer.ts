// An informer: list, then watch from the list's resourceVersion, keeping a cache
// and calling handlers on changes.
//
// Built on client-node's low-level Watch rather than its ListWatch because we
// need two things ListWatch does not give: trimming each object before it is
// cached (managedFields and last-applied annotations are often most of an
// object's bytes; dropping them bounds memory), and full control over restarts:
// - a watch that ends normally resumes from the last resourceVersion seen;
// - "410 Gone" (the resourceVersion was compacted away) re-lists, and the re-list
//   is diffed against the cache so handlers see every add, update and delete;
// - any other error restarts with exponential backoff;
// - a watch silent for longer than the watchdog (no event, no bookmark) is
//   assumed dead and restarted.
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "../observability/logger.js";
import { backoffDelay, sleep } from "./backoff.js";
import { listRaw } from "./raw-request.js";

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: k8s.V1ObjectMeta;
}

export interface InformerOptions {
  kubeConfig: k8s.KubeConfig;
  /** API path of the collection, e.g. "/api/v1" + "pods" or "/apis/sandboxing.dev/v1alpha1" + "sandboxes". */
  apiPath: string;
  resource: string;
  /** Namespaces to watch; empty or absent means all. */
  namespaces?: string[];
  labelSelector?: string;
  /** Restart a watch that has been silent this long (default 5 min; bookmarks keep healthy ones alive). */
  watchdogMs?: number;
  log: Logger;
}

export type EventHandler<T> = {
  add?(obj: T): void;
  update?(obj: T, old: T): void;
  delete?(obj: T): void;
};

class Gone extends Error {}

export function keyOf(obj: KubeObject): string {
  const { namespace, name } = obj.metadata ?? {};
  return namespace ? `${namespace}/${name}` : `${name}`;
}

/** Drop what a controller never reads but costs memory on every cached object. */
export function trim<T extends KubeObject>(obj: T): T {
  if (obj.metadata) {
    delete obj.metadata.managedFields;
    if (obj.metadata.annotations) {
      delete obj.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"];
    }
  }
  return obj;
}

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: EventHandler<T>[] = [];
  private readonly synced = new Set<string>();
  private readonly scopes: (string | undefined)[];
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private running: Promise<void>[] = [];
  /** Counters a test (or a metric) can read. */
  readonly stats = { lists: 0, watches: 0, restarts: 0, relistsAfterGone: 0 };

  constructor(private readonly opts: InformerOptions) {
    this.scopes = opts.namespaces?.length ? opts.namespaces : [undefined];
    this.log = opts.log.child({ informer: opts.resource });
  }

  on(handler: EventHandler<T>): void {
    this.handlers.push(handler);
  }

  start(): void {
    this.running = this.scopes.map((ns) => this.run(ns));
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.running);
  }

  hasSynced(): boolean {
    return this.synced.size === this.scopes.length;
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

  /** One list+watch loop per namespace scope, until stopped. */
  private async run(namespace: string | undefined): Promise<void> {
    const scope = namespace ?? "*";
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      try {
        let rv = await this.relist(namespace);
        this.synced.add(scope);
        attempt = 0;
        for (;;) {
          rv = await this.watchOnce(namespace, rv);
          if (this.abort.signal.aborted) return;
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        if (err instanceof Gone) {
          this.stats.relistsAfterGone++;
          this.log.info({ namespace: scope }, "watch expired (410 Gone); re-listing");
          continue;
        }
        this.stats.restarts++;
        const delay = backoffDelay(attempt++, { baseMs: 200, maxMs: 30_000 });
        this.log.warn(
          { namespace: scope, err: String(err), retryInMs: delay },
          "list/watch failed; retrying",
        );
        await sleep(delay, this.abort.signal);
      }
    }
  }

  /** List and reconcile the cache with the result; returns the list's resourceVersion. */
  private async relist(namespace: string | undefined): Promise<string> {
    this.stats.lists++;
    const list = await listRaw<T>(this.opts.kubeConfig, this.collectionPath(namespace), {
      labelSelector: this.opts.labelSelector,
    });
    const fresh = new Map(list.items.map((o) => [keyOf(o), trim(o)]));
    for (const [key, old] of this.cache) {
      if (namespace && old.metadata?.namespace !== namespace) continue;
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit("delete", old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit("add", obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit("update", obj, old);
    }
    return list.metadata.resourceVersion;
  }

  /** Watch until the stream ends; returns the last resourceVersion seen. Throws Gone on 410. */
  private async watchOnce(namespace: string | undefined, resourceVersion: string): Promise<string> {
    this.stats.watches++;
    let rv = resourceVersion;
    let gone = false;
    const watch = new k8s.Watch(this.opts.kubeConfig);
    // Watch's inactivity timeout is our no-event watchdog (declared private in
    // the typings, but it is the documented knob in the source).
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs =
      this.opts.watchdogMs ?? 300_000;
    const ended = new Promise<unknown>((resolve) => {
      const onAbort = () => controller?.abort();
      let controller: AbortController | undefined;
      watch
        .watch(
          this.collectionPath(namespace),
          {
            resourceVersion: rv,
            allowWatchBookmarks: true,
            labelSelector: this.opts.labelSelector,
            // Server-side end of the watch, jittered so many informers do not restart together.
            timeoutSeconds: 240 + Math.floor(Math.random() * 120),
          },
          (type: string, obj: T & { code?: number }) => {
            try {
              if (type === "ERROR") {
                if (obj.code === 410) gone = true;
                else this.log.warn({ status: obj }, "watch error event");
                controller?.abort();
                return;
              }
              const objRv = obj.metadata?.resourceVersion;
              if (objRv) rv = objRv;
              if (type === "BOOKMARK") return;
              this.apply(type, trim(obj));
            } catch (err) {
              // A bad event must never take the informer down.
              this.log.error({ err: String(err), type }, "failed to handle watch event");
            }
          },
          (err) => {
            this.abort.signal.removeEventListener("abort", onAbort);
            resolve(err);
          },
        )
        .then((c) => {
          controller = c;
          if (this.abort.signal.aborted) c.abort();
        }, resolve);
      this.abort.signal.addEventListener("abort", onAbort, { once: true });
    });
    const err = await ended;
    if (gone || (err as { statusCode?: number })?.statusCode === 410) throw new Gone();
    if (err && !this.abort.signal.aborted && (err as Error).name !== "AbortError") {
      // Inactivity (the watchdog) or a network error: resume from rv after a short pause.
      this.log.debug({ err: String(err) }, "watch ended with an error; resuming");
      await sleep(100, this.abort.signal);
    }
    return rv;
  }

  private apply(type: string, obj: T): void {
    const key = keyOf(obj);
    const old = this.cache.get(key);
    if (type === "DELETED") {
      this.cache.delete(key);
      this.emit("delete", old ?? obj);
    } else {
      this.cache.set(key, obj);
      if (old) this.emit("update", obj, old);
      else this.emit("add", obj);
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
