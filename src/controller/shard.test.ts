import { describe, expect, it } from "vitest";
import {
  planShards,
  type ShardView,
  shardLabelValue,
  shardOf,
  shardSelector,
  unshardedSelector,
} from "./shard.js";

const view = (holders: (string | undefined)[], expired: number[] = []): ShardView[] =>
  holders.map((holder, shard) => ({ shard, holder, expired: expired.includes(shard) }));

describe("shardOf", () => {
  it("is stable and within range", () => {
    expect(shardOf("ns/a", 32)).toBe(shardOf("ns/a", 32));
    for (let i = 0; i < 1000; i++) {
      const s = shardOf(`ns/sandbox-${i}`, 7);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(7);
    }
  });

  it("spreads keys evenly enough (each of 8 shards within 20 % of the mean over 8,000 keys)", () => {
    const counts = new Array(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf(`bench/s-${i}`, 8)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(200);
  });
});

describe("planShards", () => {
  it.each([
    {
      name: "alone: takes every free shard",
      shards: view([undefined, undefined, undefined, undefined]),
      members: 1,
      want: { acquire: [0, 1, 2, 3], release: [] },
    },
    {
      name: "a second member joined: the first gives up its surplus, highest first",
      shards: view(["a", "a", "a", "a"]),
      members: 2,
      want: { acquire: [], release: [3, 2] },
    },
    {
      name: "the newcomer takes only what is free, never a renewed shard",
      identity: "b",
      shards: view(["a", "a", undefined, "a"]),
      members: 2,
      want: { acquire: [2], release: [] },
    },
    {
      name: "a dead member's expired shards go to the survivors",
      shards: view(["a", "a", "c", "c"], [2, 3]),
      members: 1,
      want: { acquire: [2, 3], release: [] },
    },
    {
      name: "at its share: nothing to do",
      shards: view(["a", "a", "b", "b"]),
      members: 2,
      want: { acquire: [], release: [] },
    },
    {
      name: "an uneven split rounds up: 5 shards over 2 members, 3 each at most",
      shards: view(["a", "a", undefined, "b", "b"]),
      members: 2,
      want: { acquire: [2], release: [] },
    },
    {
      name: "a shard whose release is under way is neither counted, renewed nor taken back",
      shards: view(["a", "a", "a", undefined]),
      members: 2,
      releasing: [2, 3],
      want: { acquire: [], release: [] },
    },
    {
      name: "below the target with a release under way: takes another free shard, not that one",
      shards: view(["a", undefined, "a", undefined]),
      members: 2,
      releasing: [2],
      want: { acquire: [1], release: [] },
    },
    {
      name: "members counted as 0 (no membership seen yet) behaves as alone",
      shards: view([undefined, "a"]),
      members: 0,
      want: { acquire: [0], release: [] },
    },
  ])("$name", ({ shards, members, identity, releasing, want }) => {
    expect(planShards({ shards, members, identity: identity ?? "a", releasing })).toEqual(want);
  });
});

describe("shard labels and selectors", () => {
  it.each([
    ["one shard", () => shardSelector("x/shard", 3, 8), "x/shard=3-of-8"],
    ["within a base selector", () => shardSelector("x/shard", 0, 2, "a=b"), "a=b,x/shard=0-of-2"],
    [
      "objects labelled for no shard of this count",
      () => unshardedSelector("x/shard", 3, "a=b"),
      "a=b,x/shard notin (0-of-3,1-of-3,2-of-3)",
    ],
  ])("%s", (_, selector, want) => {
    expect(selector()).toBe(want);
  });

  it("names the shard count, so a label from another count matches no shard", () => {
    expect(shardLabelValue(1, 16)).not.toBe(shardLabelValue(1, 8));
    // A label value: alphanumeric at both ends, dashes within.
    expect(shardLabelValue(15, 16)).toMatch(/^[0-9a-z]([-0-9a-z]*[0-9a-z])?$/);
  });
});
