// The claim's decisions, as a pure function of what is observed: the claim,
// its template, the sandboxes bound to it (by the claim-UID label), and the
// pooled sandboxes it could take. The shell (controller.ts) performs the
// action and writes the status; every path is table-tested (decide.test.ts).
//
// Level-triggered: what the claim has is read from the sandboxes' labels, not
// from the claim's status, so a restart at any instant finds it again. A claim
// is never refused: no ready pooled sandbox, or overrides a running workload
// cannot take, mean a cold start, recorded as such.
import { ClaimConditionType, ClaimReason } from "../api/pool-conditions.js";
import type { ClaimSource, ClaimSpec, ClaimStatus } from "../api/pools.js";
import type { SandboxSpec } from "../api/sandbox-spec.js";
import type { BackendName } from "../backends/backend.js";
import { type ConditionLike, setCondition } from "../controller/conditions.js";
import { parseTime, rfc3339 } from "../kube/time.js";
import { type LiveEgress, warmBlocker } from "./warm.js";

/** A sandbox carrying this claim's UID label. */
export interface BoundSandbox {
  name: string;
  /** Ready=True on a status that reflects its current generation (the claim's policy is applied). */
  ready: boolean;
  /** Succeeded, Failed or Expired. */
  finished?: string;
  /** The pool it came from, if any. */
  pool?: string;
  deleting: boolean;
  /**
   * The sandbox's creation time (ms, 1 s resolution; the shell has no binding
   * time): which of several bound sandboxes to propose keeping when the
   * claim's status names none (ties broken by name).
   */
  boundMs: number;
}

/** An unclaimed pooled sandbox of an eligible pool, made from the template as it is now. */
export interface Candidate {
  name: string;
  pool: string;
  ready: boolean;
}

export interface ClaimInput {
  claim: {
    name: string;
    creationMs: number;
    generation?: number;
    spec: ClaimSpec;
    status?: ClaimStatus;
  };
  /** The template's spec; undefined when it does not exist. */
  template: SandboxSpec | undefined;
  defaultBackend: BackendName;
  /** What each backend delivers live (default DEFAULT_LIVE_EGRESS). */
  liveEgress?: Partial<Record<BackendName, LiveEgress>>;
  bound: BoundSandbox[];
  /** A sandbox this process bound whose label the cache does not show yet. */
  bindingInFlight?: string;
  /**
   * A ready pooled sandbox this process bound to the claim (at `atMs`) without
   * writing the claim's status: Bound is written with Ready, in one write,
   * if the sandbox takes the claim's spec within WARM_BOUND_GRACE_MS.
   */
  warmBinding?: { sandbox: string; atMs: number };
  /** A Sandbox with the claim's name exists and is not the claim's. */
  nameTaken: boolean;
  candidates: Candidate[];
  /** When this process first saw the claim (ms); the claim's latency is measured from it. */
  seenMs: number;
  nowMs: number;
  /** Picks among equally good candidates (random in the shell, so racing claims spread out). */
  pick?: (n: number) => number;
}

export type ClaimAction =
  | { type: "none" }
  /** Take `sandbox` with an optimistic-concurrency write; a conflict means someone else won it. */
  | { type: "bind"; sandbox: string; pool: string; source: Exclude<ClaimSource, "Cold"> }
  /** Create the claim's own sandbox, named after the claim. */
  | { type: "cold"; reason: string }
  /** Extra sandboxes bound to the claim (a lost race's leftovers): delete them. */
  | { type: "release"; names: string[] };

export interface ClaimDecision {
  action: ClaimAction;
  status: ClaimStatus;
  /** Look again after this long (expiry, a binding the cache has not shown yet). */
  requeueAfterMs?: number;
  /** The claim became Ready in this reconcile, after this many ms. */
  becameReadyMs?: number;
  /** The status says Bound for the first time in this reconcile (its Event is due). */
  becameBound?: boolean;
  /**
   * Leave the stored status as it is: a warm binding waits for its Ready (one
   * write for both), or a binding the cache has not shown yet.
   */
  deferStatus?: boolean;
}

/** Longest single wait (a timer beyond 2^31 ms would fire at once); a fresh reconcile re-arms it. */
export const MAX_REQUEUE_MS = 60 * 60 * 1000;

/** How long to trust an in-flight binding the cache has not shown yet. */
export const BINDING_CACHE_WAIT_MS = 200;

/**
 * How long the status of a claim bound to a ready pooled sandbox may wait for
 * that sandbox to take the claim's spec (its policy) before Bound is written
 * on its own. A warm sandbox usually takes it within one reconcile, so Bound
 * and Ready go in one status write instead of two (in a burst of claims the
 * apiserver's writes are the bottleneck: bench/results/pools-burst.md). The
 * binding itself (the sandbox's labels and owner) is written at once; only
 * the claim's record of it waits, and boundAt keeps the binding's time.
 */
export const WARM_BOUND_GRACE_MS = 5_000;

/** The instant the claim's sandbox expires (ms), counted from the claim. */
export function claimExpiry(
  claim: ClaimInput["claim"],
  template: SandboxSpec | undefined,
): number | undefined {
  const own = claim.spec.lifetime;
  if (own?.expiresAt) return parseTime(own.expiresAt);
  if (own?.ttlSeconds) return claim.creationMs + own.ttlSeconds * 1000;
  if (!template) return undefined;
  if (template.lifetime.expiresAt) return parseTime(template.lifetime.expiresAt);
  return claim.creationMs + (template.lifetime.ttlSeconds ?? 0) * 1000;
}

type Conds = ConditionLike[];

export function decideClaim(input: ClaimInput): ClaimDecision {
  const { claim, template, nowMs } = input;
  const now = new Date(nowMs);
  const prev = claim.status ?? {};
  let conditions = (prev.conditions ?? []) as Conds;
  const cond = (type: string, ok: boolean, reason: string, message: string) => {
    conditions = setCondition(
      conditions,
      {
        type,
        status: ok ? "True" : "False",
        reason,
        message,
        observedGeneration: claim.generation,
      },
      now,
    );
  };
  const expiresAtMs = prev.expiresAt ? parseTime(prev.expiresAt) : claimExpiry(claim, template);
  const base: ClaimStatus = {
    ...prev,
    ...(expiresAtMs !== undefined ? { expiresAt: rfc3339(expiresAtMs) } : {}),
  };
  const done = (
    status: ClaimStatus,
    action: ClaimAction = { type: "none" },
    extra: Partial<ClaimDecision> = {},
  ): ClaimDecision => {
    const untilExpiry = expiresAtMs !== undefined ? expiresAtMs - nowMs : undefined;
    const requeue = [extra.requeueAfterMs, untilExpiry && untilExpiry > 0 ? untilExpiry : undefined]
      .filter((x): x is number => x !== undefined)
      .reduce<number | undefined>((a, b) => (a === undefined ? b : Math.min(a, b)), undefined);
    return {
      ...extra,
      action,
      status: { ...status, conditions },
      requeueAfterMs: requeue === undefined ? undefined : Math.min(requeue, MAX_REQUEUE_MS),
    };
  };

  // Expired: the sandbox carries the same instant and its own controller ends it.
  if (expiresAtMs !== undefined && nowMs >= expiresAtMs) {
    cond(ClaimConditionType.Ready, false, ClaimReason.Expired, "the claim's lifetime ran out");
    return done({ ...base, phase: "Expired" });
  }

  // The one kept is the one the stored status names; without one, the first
  // bound (the name breaks ties: creation times have 1 s resolution).
  const live = input.bound
    .filter((b) => !b.deleting)
    .sort((a, b) => a.boundMs - b.boundMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const keep = live.find((b) => b.name === prev.sandboxName) ?? live[0];
  const extras = live.filter((b) => b !== keep).map((b) => b.name);
  // Extras are released only once the stored status names the one kept. Two
  // replicas that each bound a sandbox to the claim (racing, or one restarted
  // mid-binding) may each pick its own to keep; the status write, made with
  // the claim's resourceVersion as a precondition, lets only one of them say
  // which, and the other reads it after its 409. Releasing first, each would
  // delete the other's choice and the claim would lose both (SandboxLost).
  const release = prev.sandboxName !== undefined && prev.sandboxName === keep?.name;

  if (keep) {
    const source = prev.source ?? (keep.pool ? "Warm" : "Cold");
    const status: ClaimStatus = {
      ...base,
      sandboxName: keep.name,
      source,
      ...(keep.pool ? { pool: keep.pool } : {}),
      boundAt: prev.boundAt ?? rfc3339(nowMs),
    };
    const becameBound = prev.sandboxName !== keep.name || !prev.boundAt;
    const warm = input.warmBinding;
    if (
      becameBound &&
      !prev.sandboxName &&
      warm?.sandbox === keep.name &&
      !keep.ready &&
      !keep.finished &&
      !extras.length &&
      nowMs < warm.atMs + WARM_BOUND_GRACE_MS
    ) {
      return done(
        prev,
        { type: "none" },
        {
          deferStatus: true,
          requeueAfterMs: warm.atMs + WARM_BOUND_GRACE_MS - nowMs,
        },
      );
    }
    if (becameBound) {
      if (!prev.boundAt && warm?.sandbox === keep.name) status.boundAt = rfc3339(warm.atMs);
      cond(ClaimConditionType.Bound, true, boundReason(source), boundMessage(keep.name, status));
    }
    const action: ClaimAction =
      extras.length && release ? { type: "release", names: extras } : { type: "none" };
    const bound = becameBound ? { becameBound } : {};
    if (keep.finished) {
      cond(
        ClaimConditionType.Ready,
        false,
        ClaimReason.SandboxFinished,
        `sandbox ${keep.name} is ${keep.finished}`,
      );
      return done({ ...status, phase: "Failed" }, action, bound);
    }
    if (!keep.ready) {
      cond(
        ClaimConditionType.Ready,
        false,
        ClaimReason.SandboxStarting,
        startingMessage(keep.name),
      );
      return done({ ...status, phase: "Bound" }, action, bound);
    }
    cond(ClaimConditionType.Ready, true, ClaimReason.SandboxReady, `sandbox ${keep.name} is ready`);
    if (prev.readyAt) return done({ ...status, phase: "Ready" }, action, bound);
    const ms = Math.max(0, Math.round(nowMs - Math.min(input.seenMs, nowMs)));
    return done(
      { ...status, phase: "Ready", readyAt: rfc3339(nowMs), readyMilliseconds: ms },
      action,
      { ...bound, becameReadyMs: ms },
    );
  }

  // Bound by this process a moment ago; the cache has not shown the label yet.
  // Whatever the binding's reconcile wrote (or, for a warm binding, left to
  // write with Ready) stands until then.
  if (input.bindingInFlight) {
    return done(
      prev,
      { type: "none" },
      {
        deferStatus: true,
        requeueAfterMs: BINDING_CACHE_WAIT_MS,
      },
    );
  }
  // It had a sandbox and it is gone: a claim is served once.
  if (prev.sandboxName) {
    cond(
      ClaimConditionType.Ready,
      false,
      ClaimReason.SandboxLost,
      `sandbox ${prev.sandboxName} no longer exists`,
    );
    return done({ ...base, phase: "Failed" });
  }
  if (!template) {
    cond(
      ClaimConditionType.Bound,
      false,
      ClaimReason.TemplateNotFound,
      `SandboxTemplate ${claim.spec.templateRef.name} does not exist`,
    );
    cond(ClaimConditionType.Ready, false, ClaimReason.TemplateNotFound, "no template, no sandbox");
    return done({ ...base, phase: "Pending" });
  }

  const backend = template.backend ?? input.defaultBackend;
  const blocker = warmBlocker(claim.spec, template, backend, input.liveEgress?.[backend]);
  if (!blocker) {
    const ready = input.candidates.filter((c) => c.ready);
    const pool = ready.length ? ready : input.candidates;
    if (pool.length) {
      const c = pool[(input.pick ?? (() => 0))(pool.length)]!;
      return done(
        { ...base, phase: "Pending" },
        {
          type: "bind",
          sandbox: c.name,
          pool: c.pool,
          source: c.ready ? "Warm" : "Warming",
        },
      );
    }
  }
  if (input.nameTaken) {
    cond(
      ClaimConditionType.Bound,
      false,
      ClaimReason.NameTaken,
      `a Sandbox named ${claim.name} exists and belongs to someone else; the claim's own sandbox takes the claim's name`,
    );
    return done({ ...base, phase: "Pending" });
  }
  return done(
    { ...base, phase: "Pending", coldReason: blocker ?? "no ready sandbox in a warm pool" },
    { type: "cold", reason: blocker ?? "no ready sandbox in a warm pool" },
  );
}

function startingMessage(name: string): string {
  return `waiting for sandbox ${name} to be ready with the claim's spec applied`;
}

function boundReason(source: ClaimSource): string {
  if (source === "Warm") return ClaimReason.BoundWarm;
  if (source === "Warming") return ClaimReason.BoundWarming;
  return ClaimReason.BoundCold;
}

function boundMessage(name: string, s: ClaimStatus): string {
  if (s.source === "Cold") return `created sandbox ${name}: ${s.coldReason ?? "cold start"}`;
  return `took sandbox ${name} from pool ${s.pool}${s.source === "Warming" ? " (still starting)" : ""}`;
}

/** The status once the shell has performed a bind or cold action successfully. */
export function statusAfter(
  decision: ClaimDecision,
  action: Extract<ClaimAction, { type: "bind" | "cold" }>,
  sandboxName: string,
  generation: number | undefined,
  nowMs: number,
): ClaimStatus {
  const source: ClaimSource = action.type === "bind" ? action.source : "Cold";
  const status: ClaimStatus = {
    ...decision.status,
    phase: "Bound",
    sandboxName,
    source,
    boundAt: rfc3339(nowMs),
    ...(action.type === "bind" ? { pool: action.pool } : { coldReason: action.reason }),
  };
  const conds = setCondition(
    (status.conditions ?? []) as Conds,
    {
      type: ClaimConditionType.Bound,
      status: "True",
      reason: boundReason(source),
      message: boundMessage(sandboxName, status),
      observedGeneration: generation,
    },
    new Date(nowMs),
  );
  // What the next reconcile says of a bound sandbox not yet ready, said now:
  // otherwise that reconcile writes the status a second time to add it.
  status.conditions = setCondition(
    conds,
    {
      type: ClaimConditionType.Ready,
      status: "False",
      reason: ClaimReason.SandboxStarting,
      message: startingMessage(sandboxName),
      observedGeneration: generation,
    },
    new Date(nowMs),
  );
  return status;
}
