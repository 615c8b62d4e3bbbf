// A cache of only the objects of the shards this replica holds: one Informer
// per held shard, each watching by the shard's label (see shard.ts), started
// when the shard is gained and dropped when it is lost.
//
// Why not one informer for every object (what each replica ran before): then
// every replica parses and caches every watch event of the whole fleet, and
// that part of the work does not shrink as replicas are added; measured, it
// was ~45 % of a single controller's CPU, which capped three replicas at 1.4x
// one. Per-shard watches make it shrink with the replica's share.
//
// What it costs: a shard gained starts cold (a LIST by label before its keys
// are reconciled), and a lost shard's objects are forgotten silently (no
// delete events: the objects still exist, they are another replica's now).
import type { EventHandler, Informer, KubeObject, ObjectSource } from "./informer.js";

/** A source whose contents follow the shards held (the controller tells it). */
export interface ShardAware {
  addShard(shard: number): void;
  /**
   * Forgets the shard before returning its promise (an addShard right after
   * starts it afresh); the promise resolves once its watches have ended.
   */
  removeShard(shard: number): Promise<void>;
}

export function isShardAware(source: object): source is ShardAware {
  return typeof (source as Partial<ShardAware>).addShard === "function";
}

/**
 * Drops a lost shard from every shard-aware source, unless `regained()` says
 * it is held again. The check and every removal happen in one synchronous
 * step: removing source after source with an await between them let a shard
 * regained in between be added to the sources already done (fresh caches) and
 * then removed from the later ones, whose caches it still had when it was
 * added (so nothing was added) — a held shard left with no cache of, say, its
 * Pods, whose reconciles then saw them missing for as long as it was held.
 */
export async function dropShard(
  sources: readonly object[],
  shard: number,
  regained: () => boolean,
): Promise<void> {
  if (regained()) return;
  await Promise.all(sources.filter(isShardAware).map((s) => s.removeShard(shard)));
}

export class ShardedInformer<T extends KubeObject> implements ObjectSource<T>, ShardAware {
  private readonly byShard = new Map<number, Informer<T>>();
  private readonly handlers: EventHandler<T>[] = [];
  private started = false;

  /** `make(shard)` builds (does not start) the informer of one shard: same resource, the shard's selector. */
  constructor(private readonly make: (shard: number) => Informer<T>) {}

  on(handler: EventHandler<T>): void {
    this.handlers.push(handler);
    for (const informer of this.byShard.values()) informer.on(handler);
  }

  start(): void {
    this.started = true;
    for (const informer of this.byShard.values()) informer.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    const all = [...this.byShard.values()];
    this.byShard.clear();
    await Promise.all(all.map((i) => i.stop()));
  }

  addShard(shard: number): void {
    if (this.byShard.has(shard)) return;
    const informer = this.make(shard);
    for (const h of this.handlers) informer.on(h);
    this.byShard.set(shard, informer);
    if (this.started) informer.start();
  }

  async removeShard(shard: number): Promise<void> {
    const informer = this.byShard.get(shard);
    if (!informer) return;
    this.byShard.delete(shard);
    await informer.stop();
  }

  shards(): number[] {
    return [...this.byShard.keys()];
  }

  hasSynced(): boolean {
    for (const informer of this.byShard.values()) if (!informer.hasSynced()) return false;
    return true;
  }

  async upToDate(signal: AbortSignal): Promise<void> {
    await Promise.all([...this.byShard.values()].map((i) => i.upToDate(signal)));
  }

  problems(): string[] {
    return [...this.byShard.values()].flatMap((i) => i.problems());
  }

  get(key: string): T | undefined {
    // A key lives in one shard's cache; a handful of map lookups is cheaper than
    // knowing which (secondaries are keyed by their own name, not their owner's).
    for (const informer of this.byShard.values()) {
      const obj = informer.get(key);
      if (obj) return obj;
    }
    return undefined;
  }

  list(): T[] {
    return [...this.byShard.values()].flatMap((i) => i.list());
  }
}
