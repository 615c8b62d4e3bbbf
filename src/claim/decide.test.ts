import { describe, expect, it } from "vitest";
import type { ClaimSpec, ClaimStatus } from "../api/pools.js";
import type { EgressPolicy, SandboxSpec } from "../api/sandbox-spec.js";
import { statusEqual } from "../controller/status-writer.js";
import {
  type ClaimInput,
  claimExpiry,
  decideClaim,
  statusAfter,
  WARM_BOUND_GRACE_MS,
} from "./decide.js";
import { warmBlocker } from "./warm.js";

const template: SandboxSpec = {
  image: "busybox",
  resources: { cpu: "1", memory: "1Gi", pids: 1024 },
  lifetime: { ttlSeconds: 600, onExpire: "Delete" },
  network: { egress: { defaultAction: "deny" } },
  security: { readOnlyRootFilesystem: false },
  backend: "docker",
};
const spec = (over: Partial<ClaimSpec> = {}): ClaimSpec => ({
  templateRef: { name: "t" },
  ...over,
});
const NOW = 1_000_000;

const input = (over: Partial<ClaimInput> = {}): ClaimInput => ({
  claim: { name: "c", creationMs: NOW - 100, generation: 1, spec: spec() },
  template,
  defaultBackend: "pod",
  bound: [],
  nameTaken: false,
  candidates: [],
  seenMs: NOW - 50,
  nowMs: NOW,
  ...over,
});

describe("decideClaim", () => {
  it("binds a ready pooled sandbox before a starting one", () => {
    const d = decideClaim(
      input({
        candidates: [
          { name: "starting", pool: "p", ready: false },
          { name: "ready", pool: "p", ready: true },
        ],
      }),
    );
    expect(d.action).toEqual({ type: "bind", sandbox: "ready", pool: "p", source: "Warm" });
  });

  it("binds a starting one when none is ready (a claim during a refill)", () => {
    const d = decideClaim(input({ candidates: [{ name: "s", pool: "p", ready: false }] }));
    expect(d.action).toMatchObject({ type: "bind", source: "Warming" });
  });

  it("spreads racing claims over the candidates with pick", () => {
    const candidates = ["a", "b", "c"].map((name) => ({ name, pool: "p", ready: true }));
    const d = decideClaim(input({ candidates, pick: (n) => n - 1 }));
    expect(d.action).toMatchObject({ sandbox: "c" });
  });

  it("starts cold when the pool is empty, recording why", () => {
    const d = decideClaim(input());
    expect(d.action).toEqual({ type: "cold", reason: "no ready sandbox in a warm pool" });
    expect(d.status.coldReason).toBe("no ready sandbox in a warm pool");
  });

  it.each([
    ["env", spec({ env: [{ name: "A", value: "1" }] }), "env"],
    ["resources", spec({ resources: { cpu: "2", memory: "1Gi", pids: 1024 } }), "resources"],
  ])("starts cold for %s even with a ready sandbox", (_n, s, reason) => {
    const d = decideClaim(
      input({
        claim: { name: "c", creationMs: NOW, spec: s },
        candidates: [{ name: "r", pool: "p", ready: true }],
      }),
    );
    expect(d.action.type).toBe("cold");
    expect((d.action as { reason: string }).reason).toContain(reason);
  });

  it.each([
    ["name rules", { defaultAction: "deny", rules: [{ action: "allow", target: "pypi.org" }] }],
    [
      "an address rule",
      { defaultAction: "deny", rules: [{ action: "allow", target: "10.0.0.0/8" }] },
    ],
    ["defaultAction allow", { defaultAction: "allow" }],
  ] as const)("takes %s warm on the docker backend, cold on the pod backend", (_n, egress) => {
    const s = spec({ egress: structuredClone(egress) as EgressPolicy });
    expect(warmBlocker(s, template, "docker")).toBeUndefined();
    expect(warmBlocker(s, { ...template, backend: "pod" }, "pod")).toContain("pod backend");
    expect(warmBlocker(spec(), { ...template, backend: "pod" }, "pod")).toBeUndefined();
    const d = decideClaim(
      input({
        claim: { name: "c", creationMs: NOW, spec: s },
        candidates: [{ name: "r", pool: "p", ready: true }],
      }),
    );
    expect(d.action.type).toBe("bind");
  });

  it("waits with a reason when the template is missing, never errors", () => {
    const d = decideClaim(input({ template: undefined }));
    expect(d.action).toEqual({ type: "none" });
    expect(d.status.phase).toBe("Pending");
    expect(d.status.conditions?.find((c) => c.type === "Ready")?.reason).toBe("TemplateNotFound");
  });

  it("reports NameTaken instead of overwriting someone else's Sandbox", () => {
    const d = decideClaim(input({ nameTaken: true }));
    expect(d.action).toEqual({ type: "none" });
    expect(d.status.conditions?.find((c) => c.type === "Bound")?.reason).toBe("NameTaken");
  });

  it("is Bound until the sandbox is ready with the claim's generation, then Ready once, timed", () => {
    const bound = [{ name: "s", ready: false, pool: "p", deleting: false, boundMs: NOW }];
    const prev = {
      sandboxName: "s",
      source: "Warm" as const,
      pool: "p",
      boundAt: "2026-01-01T00:00:00Z",
    };
    const claim = { name: "c", creationMs: NOW - 100, spec: spec(), status: prev };
    expect(decideClaim(input({ claim, bound })).status.phase).toBe("Bound");
    const ready = decideClaim(input({ claim, bound: [{ ...bound[0]!, ready: true }] }));
    expect(ready.status).toMatchObject({ phase: "Ready", readyMilliseconds: 50 });
    expect(ready.becameReadyMs).toBe(50);
    const again = decideClaim(
      input({ claim: { ...claim, status: ready.status }, bound: [{ ...bound[0]!, ready: true }] }),
    );
    expect(again.becameReadyMs).toBeUndefined();
  });

  it("keeps the sandbox its status names and releases extras from a lost race", () => {
    const bound = ["x", "s", "y"].map((name, i) => ({
      name,
      ready: true,
      deleting: false,
      boundMs: NOW + i,
    }));
    const claim = { name: "c", creationMs: NOW, spec: spec(), status: { sandboxName: "s" } };
    const d = decideClaim(input({ claim, bound }));
    expect(d.status.sandboxName).toBe("s");
    expect(d.action).toEqual({ type: "release", names: ["x", "y"] });
  });

  describe("two sandboxes bound to a claim whose status names neither (replicas raced, or one restarted)", () => {
    // The burst that lost claims (pools-concurrency): two replicas each bound a
    // ready pooled sandbox to c0 and deferred its Bound (a warm binding); both
    // sandboxes were created in the same second. Each replica kept its own and
    // released the other's before writing the status: the claim lost both.
    const both = (order: string[], over: { ready?: boolean; boundMs?: number } = {}) =>
      order.map((name) => ({
        name,
        ready: over.ready ?? false,
        pool: "p",
        deleting: false,
        boundMs: over.boundMs ?? NOW - 9000,
      }));

    it.each([
      ["replica A's view", ["s1", "s2"], { sandbox: "s1", atMs: NOW - 300 }],
      ["replica B's view", ["s2", "s1"], { sandbox: "s2", atMs: NOW - 200 }],
      ["a restarted replica's view", ["s2", "s1"], undefined],
      ["both ready", ["s2", "s1"], { sandbox: "s2", atMs: NOW - 200 }],
    ])("%s: names the same one in the status and releases nothing yet", (n, order, warmBinding) => {
      const d = decideClaim(
        input({ bound: both(order, { ready: n === "both ready" }), warmBinding }),
      );
      expect(d.action).toEqual({ type: "none" });
      expect(d.deferStatus).toBeUndefined();
      expect(d.status.sandboxName).toBe("s1");
      expect(d.becameBound).toBe(true);
    });

    it("releases the other once the stored status names the one kept", () => {
      const first = decideClaim(input({ bound: both(["s2", "s1"]) }));
      const claim = { ...input().claim, status: first.status };
      const d = decideClaim(input({ claim, bound: both(["s1", "s2"]) }));
      expect(d.status.sandboxName).toBe("s1");
      expect(d.action).toEqual({ type: "release", names: ["s2"] });
      // Whichever replica stored its status first is kept, even not the first bound.
      const other = { ...input().claim, status: { ...first.status, sandboxName: "s2" } };
      expect(decideClaim(input({ claim: other, bound: both(["s1", "s2"]) })).action).toEqual({
        type: "release",
        names: ["s1"],
      });
    });

    // The two replicas' reconciles against one store: the claim's status is
    // written with its resourceVersion as a precondition (a 409 makes the
    // replica decide again from what is stored); a release deletes at once.
    // Both decide from the same stored version, then act one after the other,
    // then reconcile again until nothing changes: the claim keeps exactly one
    // sandbox and its status names it, whatever order each replica lists in.
    it.each([
      ["same creation second, views listed in opposite orders", [0, 0]],
      ["s2 created first", [1000, 0]],
    ])("two replicas deciding at once never lose the claim (%s)", (_n, [at1, at2]) => {
      const store = {
        rv: 1,
        status: undefined as ClaimStatus | undefined,
        live: new Set(["s1", "s2"]),
      };
      const boundMs: Record<string, number> = { s1: NOW - 9000 + at1!, s2: NOW - 9000 + at2! };
      const view = (order: string[]) => ({
        rv: store.rv,
        input: input({
          claim: { ...input().claim, status: store.status },
          bound: order
            .filter((n) => store.live.has(n))
            .map((name) => ({
              name,
              ready: false,
              pool: "p",
              deleting: false,
              boundMs: boundMs[name]!,
            })),
        }),
      });
      const act = (v: ReturnType<typeof view>, own: string) => {
        const d = decideClaim({ ...v.input, warmBinding: { sandbox: own, atMs: NOW - 100 } });
        if (d.action.type === "release") for (const n of d.action.names) store.live.delete(n);
        if (d.deferStatus || statusEqual(v.input.claim.status, d.status)) return false;
        if (v.rv !== store.rv) return true; // 409: decided again from a fresh view
        store.status = d.status;
        store.rv++;
        return true;
      };
      const a = view(["s1", "s2"]);
      const b = view(["s2", "s1"]);
      act(a, "s1");
      act(b, "s2");
      for (let round = 0; round < 5; round++) {
        const changed = [act(view(["s1", "s2"]), "s1"), act(view(["s2", "s1"]), "s2")];
        if (!changed.some(Boolean)) break;
      }
      expect(store.live.size).toBe(1);
      expect(store.status?.sandboxName).toBe([...store.live][0]);
      expect(store.status?.phase).toBe("Bound");
    });

    it("keeps the first bound before the name when their times differ", () => {
      const bound = [
        { ...both(["a"])[0]!, boundMs: NOW - 1000 },
        { ...both(["b"])[0]!, boundMs: NOW - 2000 },
      ];
      expect(decideClaim(input({ bound })).status.sandboxName).toBe("b");
    });
  });

  it("waits for the cache after its own binding instead of binding again, writing nothing", () => {
    const d = decideClaim(
      input({ bindingInFlight: "s", candidates: [{ name: "r", pool: "p", ready: true }] }),
    );
    expect(d.action).toEqual({ type: "none" });
    expect(d.deferStatus).toBe(true);
    expect(d.requeueAfterMs).toBeLessThanOrEqual(200);
  });

  describe("a ready pooled sandbox bound by this process: Bound and Ready in one write", () => {
    const BOUND_AT = NOW - 300;
    const warmBinding = { sandbox: "s", atMs: BOUND_AT };
    const starting = { name: "s", ready: false, pool: "p", deleting: false, boundMs: NOW - 9000 };

    it("writes nothing while the sandbox takes the claim's spec, and looks again at the grace's end", () => {
      const d = decideClaim(input({ warmBinding, bound: [starting] }));
      expect(d.deferStatus).toBe(true);
      expect(d.action).toEqual({ type: "none" });
      expect(d.requeueAfterMs).toBe(BOUND_AT + WARM_BOUND_GRACE_MS - NOW);
      expect(d.becameBound).toBeUndefined();
    });

    it("writes Bound and Ready together once it is ready, boundAt the binding's time", () => {
      const d = decideClaim(input({ warmBinding, bound: [{ ...starting, ready: true }] }));
      expect(d.deferStatus).toBeUndefined();
      expect(d.status).toMatchObject({
        phase: "Ready",
        sandboxName: "s",
        source: "Warm",
        pool: "p",
        boundAt: new Date(BOUND_AT).toISOString().replace(/\.\d+Z$/, "Z"),
        readyMilliseconds: 50,
      });
      expect(d.status.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
        ["Bound", "True", "BoundWarm"],
        ["Ready", "True", "SandboxReady"],
      ]);
      expect(d).toMatchObject({ becameBound: true, becameReadyMs: 50 });
      // The next reconcile finds nothing to add or announce.
      const next = decideClaim(
        input({
          claim: {
            name: "c",
            creationMs: NOW - 100,
            generation: 1,
            spec: spec(),
            status: d.status,
          },
          bound: [{ ...starting, ready: true }],
          nowMs: NOW + 5,
        }),
      );
      expect(statusEqual(next.status, d.status)).toBe(true);
      expect(next.becameBound).toBeUndefined();
      expect(next.becameReadyMs).toBeUndefined();
    });

    it("writes Bound on its own once the grace has run out", () => {
      const d = decideClaim(
        input({ warmBinding, bound: [starting], nowMs: BOUND_AT + WARM_BOUND_GRACE_MS }),
      );
      expect(d.deferStatus).toBeUndefined();
      expect(d.status.phase).toBe("Bound");
      expect(d.becameBound).toBe(true);
    });

    it.each([
      ["a finished sandbox", { ...starting, finished: "Failed" }, "Failed"],
      ["another sandbox than the one bound", { ...starting, name: "other" }, "Bound"],
    ])("does not wait for %s", (_n, b, phase) => {
      const d = decideClaim(input({ warmBinding, bound: [b] }));
      expect(d.deferStatus).toBeUndefined();
      expect(d.status.phase).toBe(phase);
    });

    it("writes Bound at once without a binding of its own (after a restart)", () => {
      const d = decideClaim(input({ bound: [starting] }));
      expect(d.deferStatus).toBeUndefined();
      expect(d.status.phase).toBe("Bound");
      expect(d.becameBound).toBe(true);
    });
  });

  it("never serves a claim twice: a lost sandbox fails the claim", () => {
    const claim = { name: "c", creationMs: NOW, spec: spec(), status: { sandboxName: "gone" } };
    const d = decideClaim(input({ claim, candidates: [{ name: "r", pool: "p", ready: true }] }));
    expect(d.action).toEqual({ type: "none" });
    expect(d.status.phase).toBe("Failed");
  });

  it("expires at the claim's lifetime, counted from the claim", () => {
    const claim = {
      name: "c",
      creationMs: NOW - 5000,
      spec: spec({ lifetime: { ttlSeconds: 4, onExpire: "Delete" } }),
    };
    expect(claimExpiry(claim, template)).toBe(NOW - 1000);
    const d = decideClaim(input({ claim, candidates: [{ name: "r", pool: "p", ready: true }] }));
    expect(d.status.phase).toBe("Expired");
    expect(d.action).toEqual({ type: "none" });
    // Without its own lifetime: the template's ttl, from the claim.
    expect(claimExpiry({ ...claim, spec: spec() }, template)).toBe(NOW - 5000 + 600_000);
  });

  it("requeues for the expiry", () => {
    const d = decideClaim(input({ candidates: [{ name: "r", pool: "p", ready: true }] }));
    expect(d.requeueAfterMs).toBe(NOW - 100 + 600_000 - NOW);
    const year = decideClaim(
      input({
        claim: {
          name: "c",
          creationMs: NOW,
          spec: spec({ lifetime: { ttlSeconds: 31_000_000, onExpire: "Delete" } }),
        },
      }),
    );
    expect(year.requeueAfterMs).toBe(3_600_000);
  });

  it("records the binding in the status", () => {
    const d = decideClaim(input({ candidates: [{ name: "r", pool: "p", ready: true }] }));
    const s = statusAfter(d, d.action as never, "r", 1, NOW);
    expect(s).toMatchObject({ phase: "Bound", sandboxName: "r", source: "Warm", pool: "p" });
    expect(s.conditions?.find((c) => c.type === "Bound")).toMatchObject({
      status: "True",
      reason: "BoundWarm",
    });
  });

  it("writes the binding's status once: the next reconcile finds nothing to add until the sandbox is ready", () => {
    for (const [name, ready] of [
      ["r", true],
      ["s", false],
    ] as const) {
      const d = decideClaim(input({ candidates: [{ name, pool: "p", ready }] }));
      const s = statusAfter(d, d.action as never, name, 1, NOW);
      const next = decideClaim(
        input({
          claim: { name: "c", creationMs: NOW - 100, generation: 1, spec: spec(), status: s },
          bound: [{ name, ready: false, pool: "p", deleting: false, boundMs: NOW }],
          nowMs: NOW + 5,
        }),
      );
      expect(statusEqual(next.status, s)).toBe(true);
      expect(next.action).toEqual({ type: "none" });
    }
  });
});
