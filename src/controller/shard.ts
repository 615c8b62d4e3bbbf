// Keys to shards, and which shards a replica should hold: the pure half of
// sharded ownership (shard-elector.ts is the side-effecting half).
//
// A key belongs to exactly one of K shards, for good: the shard is a hash of
// the key and K is fixed per installation (changing it moves keys, a rollout
// like any other). Each shard has a Lease; whoever holds shard i's Lease is the
// only replica that reconciles, or writes for, the keys of shard i.

/** The shard of a key: FNV-1a (32-bit) of its UTF-16 code units, modulo `shards`. */
export function shardOf(key: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

/** One shard's Lease as this replica last observed it. */
export interface ShardView {
  shard: number;
  /** Who holds it; undefined when no holder, or the Lease does not exist yet. */
  holder?: string;
  /** The holder stopped renewing for a whole lease duration (by our clock). */
  expired: boolean;
}

export interface ShardPlanInput {
  shards: ShardView[];
  /** Live replicas (membership Leases not expired), this one included; at least 1. */
  members: number;
  identity: string;
  /**
   * Shards this replica gave up whose release (drain, then clearing the
   * holder) is still under way: not held any more, and not to be taken back
   * before the release is done, whatever their Lease still says.
   */
  releasing?: readonly number[];
}

export interface ShardPlan {
  /** Free or expired shards to campaign for. */
  acquire: number[];
  /** Held shards to give up (stop their work first, then clear the holder). */
  release: number[];
}

/**
 * What to do this round so shards spread evenly: each replica aims at
 * ceil(K / members) shards. Below it, take free (or expired) shards, lowest
 * first; above it, give up the surplus, highest first, so a replica that
 * joins finds shards free within a round or two and a dead one's shards go
 * to the others once its Leases expire. Never asks for a shard someone else
 * holds while that holder renews.
 */
export function planShards({
  shards,
  members,
  identity,
  releasing = [],
}: ShardPlanInput): ShardPlan {
  const target = Math.ceil(shards.length / Math.max(1, members));
  const giving = new Set(releasing);
  const held = shards
    .filter((s) => s.holder === identity && !giving.has(s.shard))
    .map((s) => s.shard);
  if (held.length > target) {
    return { acquire: [], release: held.sort((a, b) => b - a).slice(0, held.length - target) };
  }
  const free = shards
    .filter(
      (s) => s.holder !== identity && (s.holder === undefined || s.expired) && !giving.has(s.shard),
    )
    .map((s) => s.shard)
    .sort((a, b) => a - b);
  return { acquire: free.slice(0, target - held.length), release: [] };
}

/**
 * The value of a shard label: the shard and the shard count, so that objects
 * labelled under another count (before a change of K) match no shard's
 * selector and are labelled again rather than read as some other shard's.
 */
export function shardLabelValue(shard: number, shards: number): string {
  return `${shard}-of-${shards}`;
}

/** Selects the objects labelled for `shard` (of `shards`), within `base` (a selector or nothing). */
export function shardSelector(
  labelKey: string,
  shard: number,
  shards: number,
  base?: string,
): string {
  const own = `${labelKey}=${shardLabelValue(shard, shards)}`;
  return base ? `${base},${own}` : own;
}

/** Selects the objects not (or no longer correctly) labelled for any of the `shards`, within `base`. */
export function unshardedSelector(labelKey: string, shards: number, base?: string): string {
  const values = Array.from({ length: shards }, (_, i) => shardLabelValue(i, shards));
  const own = `${labelKey} notin (${values.join(",")})`;
  return base ? `${base},${own}` : own;
}
