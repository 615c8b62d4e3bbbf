import { describe, expect, it } from "vitest";
import type { Informer, KubeObject } from "./informer.js";
import { dropShard, ShardedInformer } from "./sharded-informer.js";

/** One shard's informer, as far as ShardedInformer uses it; its stop() ends when the test says. */
class FakeInformer {
  stopped = false;
  private release!: () => void;
  private readonly stopping = new Promise<void>((r) => {
    this.release = r;
  });
  constructor(readonly shard: number) {}
  on() {}
  start() {}
  stop(): Promise<void> {
    this.stopped = true;
    return this.stopping;
  }
  finishStopping() {
    this.release();
  }
}

function sources(names: string[]) {
  const made: FakeInformer[] = [];
  const all = names.map(
    () =>
      new ShardedInformer<KubeObject>((shard) => {
        const f = new FakeInformer(shard);
        made.push(f);
        return f as unknown as Informer<KubeObject>;
      }),
  );
  for (const s of all) s.start();
  return { all, made };
}

describe("dropShard", () => {
  it("a shard regained while a dropped shard's first watch is still stopping keeps a live cache in every source", async () => {
    // A controller's primary and two secondaries, each watching shard 3.
    const { all, made } = sources(["primary", "pods", "services"]);
    const held = new Set<number>();
    for (const s of all) s.addShard(3);
    const first = [...made];

    // Shard 3 lost: its watches go, and the first one takes a while to end.
    const dropping = dropShard(all, 3, () => held.has(3));
    // Regained before that stop ended: every source is told to watch it again.
    held.add(3);
    for (const s of all) s.addShard(3);
    for (const f of first) f.finishStopping();
    await dropping;

    // Every source watches shard 3, each with an informer that was not stopped.
    for (const s of all) expect(s.shards()).toEqual([3]);
    const live = made.filter((f) => !f.stopped);
    expect(live.map((f) => f.shard)).toEqual([3, 3, 3]);
    expect(first.every((f) => f.stopped)).toBe(true);
  });

  it("drops nothing when the shard came back before the drop ran", async () => {
    const { all, made } = sources(["primary", "pods"]);
    for (const s of all) s.addShard(1);
    await dropShard(all, 1, () => true);
    for (const s of all) expect(s.shards()).toEqual([1]);
    expect(made.some((f) => f.stopped)).toBe(false);
  });

  it("ignores sources that are not shard-aware", async () => {
    const { all, made } = sources(["primary"]);
    all[0]!.addShard(2);
    const plain = { get: () => undefined };
    const dropping = dropShard([plain, ...all], 2, () => false);
    expect(all[0]!.shards()).toEqual([]);
    for (const f of made) f.finishStopping();
    await dropping;
  });
});
