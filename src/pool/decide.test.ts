import { describe, expect, it } from "vitest";
import type { PoolSpec } from "../api/pools.js";
import { decidePool, type PooledSandbox, targetReplicas } from "./decide.js";

const spec = (over: Partial<PoolSpec> = {}): PoolSpec => ({
  templateRef: { name: "t" },
  replicas: 3,
  refill: { perSecond: 10, burst: 20 },
  updateStrategy: { maxSurge: 1, maxUnavailable: 0 },
  ...over,
});

let n = 0;
const sbx = (hash: string, ready: boolean, extra: Partial<PooledSandbox> = {}): PooledSandbox => ({
  name: `s${n++}`,
  hash,
  ready,
  deleting: false,
  createdMs: n,
  ...extra,
});

describe("targetReplicas", () => {
  it.each([
    [{ replicas: 3 }, 3],
    [{ replicas: 0, minReplicas: 2 }, 2],
    [{ replicas: 9, maxReplicas: 4 }, 4],
    [{ replicas: 0 }, 0],
  ])("%j -> %i", (over, want) => expect(targetReplicas(spec(over))).toBe(want));
});

describe("decidePool", () => {
  it("fills an empty pool", () => {
    expect(decidePool({ spec: spec(), templateHash: "h", sandboxes: [] })).toMatchObject({
      create: 3,
      remove: [],
    });
  });

  it("counts sandboxes that are starting: no second create for them", () => {
    const d = decidePool({
      spec: spec(),
      templateHash: "h",
      sandboxes: [sbx("h", false), sbx("h", true)],
    });
    expect(d.create).toBe(1);
    expect(d.counts).toEqual({ total: 2, ready: 1, updated: 2 });
  });

  it("replaces one being deleted (a claim took it or it is going)", () => {
    const d = decidePool({
      spec: spec(),
      templateHash: "h",
      sandboxes: [sbx("h", true), sbx("h", true), sbx("h", true, { deleting: true })],
    });
    expect(d.create).toBe(1);
  });

  it("removes finished ones and replaces them", () => {
    const dead = sbx("h", false, { finished: true });
    const d = decidePool({ spec: spec(), templateHash: "h", sandboxes: [dead, sbx("h", true)] });
    expect(d).toMatchObject({ create: 2, remove: [dead.name] });
  });

  it("scales down unready and youngest first", () => {
    const old = sbx("h", true, { createdMs: 1 });
    const young = sbx("h", true, { createdMs: 50 });
    const starting = sbx("h", false, { createdMs: 2 });
    const d = decidePool({
      spec: spec({ replicas: 1 }),
      templateHash: "h",
      sandboxes: [old, young, starting],
    });
    expect(d.remove).toEqual([starting.name, young.name]);
    expect(d.create).toBe(0);
  });

  it("scales to 0 and back", () => {
    const all = [sbx("h", true), sbx("h", false)];
    expect(
      decidePool({ spec: spec({ replicas: 0 }), templateHash: "h", sandboxes: all }).remove,
    ).toHaveLength(2);
    expect(
      decidePool({ spec: spec({ replicas: 2 }), templateHash: "h", sandboxes: [] }).create,
    ).toBe(2);
  });

  it("without its template makes and removes nothing", () => {
    const d = decidePool({ spec: spec(), templateHash: undefined, sandboxes: [sbx("h", true)] });
    expect(d).toMatchObject({ create: 0, remove: [] });
  });

  describe("rolls a template change within the budget", () => {
    it("surges one at a time while keeping every ready one (maxUnavailable 0)", () => {
      const stale = [sbx("old", true), sbx("old", true), sbx("old", true)];
      // Step 1: one new one, nothing removed.
      expect(decidePool({ spec: spec(), templateHash: "h", sandboxes: stale })).toMatchObject({
        create: 1,
        remove: [],
      });
      // Step 2: the new one is starting: wait.
      const starting = sbx("h", false);
      expect(
        decidePool({ spec: spec(), templateHash: "h", sandboxes: [...stale, starting] }),
      ).toMatchObject({ create: 0, remove: [] });
      // Step 3: it is ready: one stale goes, the next new one comes.
      const d = decidePool({
        spec: spec(),
        templateHash: "h",
        sandboxes: [...stale, { ...starting, ready: true }],
      });
      expect(d.remove).toHaveLength(1);
      expect(d.create).toBe(1);
    });

    it("removes first within maxUnavailable when there is no surge", () => {
      const stale = [sbx("old", true), sbx("old", true), sbx("old", true)];
      const d = decidePool({
        spec: spec({ updateStrategy: { maxSurge: 0, maxUnavailable: 1 } }),
        templateHash: "h",
        sandboxes: stale,
      });
      expect(d).toMatchObject({ create: 1 });
      expect(d.remove).toHaveLength(1);
    });

    it("removes stale unready ones at once", () => {
      const d = decidePool({
        spec: spec(),
        templateHash: "h",
        sandboxes: [sbx("old", false), sbx("old", true), sbx("h", true), sbx("h", true)],
      });
      expect(d.remove).toHaveLength(1);
      expect(d.create).toBe(1);
    });

    it("never exceeds replicas + maxSurge", () => {
      for (let stale = 0; stale <= 5; stale++)
        for (let fresh = 0; fresh <= 5; fresh++) {
          const sandboxes = [
            ...Array.from({ length: stale }, () => sbx("old", true)),
            ...Array.from({ length: fresh }, () => sbx("h", true)),
          ];
          const d = decidePool({ spec: spec(), templateHash: "h", sandboxes });
          expect(sandboxes.length - d.remove.length + d.create).toBeLessThanOrEqual(
            Math.max(3 + 1, sandboxes.length - d.remove.length),
          );
          const readyLeft = sandboxes.filter((s) => !d.remove.includes(s.name)).length;
          expect(readyLeft).toBeGreaterThanOrEqual(Math.min(3, sandboxes.length));
        }
    });
  });
});
