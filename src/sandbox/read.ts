// How the reconciler reads a Sandbox from the cache. Lifetime and deletion
// depend only on what the user wrote (spec) and what the apiserver keeps
// (metadata); the status is the controller's own record, read field by field so
// that a value it cannot read (written by hand through the status subresource,
// or by an older controller) is dropped and then overwritten by the next write,
// instead of blocking the sandbox.
import type { V1ObjectMeta } from "@kubernetes/client-node";
import type { z } from "zod";
import { API_VERSION, SANDBOX_KIND } from "../api/group.js";
import type { Sandbox } from "../api/sandbox.js";
import {
  type Backend as BackendName,
  type SandboxSpec,
  SandboxSpecSchema,
} from "../api/sandbox-spec.js";
import {
  type Condition,
  ConditionSchema,
  type SandboxStatus,
  SandboxStatusSchema,
} from "../api/sandbox-status.js";

/** A Sandbox as the reconciler sees it. */
export interface SandboxView {
  metadata: V1ObjectMeta;
  /** The status as stored, unparsed: the status writer diffs against it, so what is unreadable gets replaced. */
  storedStatus: unknown;
  /** The readable part of the status. */
  status: SandboxStatus | undefined;
  /** The spec, when the controller can read all of it. */
  spec?: SandboxSpec;
  /** Why it cannot, field by field ("spec.image: ..."). */
  invalid?: string;
  /** The lifetime, read on its own: an invalid spec elsewhere does not stop the sandbox expiring. */
  lifetime?: SandboxSpec["lifetime"];
  /** The backend the spec asks for, when it names a known one. */
  backend?: BackendName;
}

interface Stored {
  metadata?: V1ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

/** The spec part of a view: what depends on the spec alone. */
type SpecPart = Pick<SandboxView, "spec" | "invalid" | "lifetime" | "backend">;

/** The Sandbox `raw` as the reconciler reads it (parsed afresh; see SandboxReader). */
export function readSandbox(raw: unknown): SandboxView {
  const obj = (raw ?? {}) as Stored;
  return Object.assign(viewOf(obj), parseSpec(obj));
}

/**
 * Reads Sandboxes from the informer cache, parsing as little as it can: the
 * cache replaces an object on every change and never mutates one it holds, so
 * an object read before reads the same (a Sandbox reconciled again because its
 * Pod moved, most reconciles); and a new version at the same UID and
 * generation has the same spec (our own status writes, most new versions), so
 * its spec is not parsed again. Callers must not mutate what it returns.
 */
export class SandboxReader {
  /** Views by the cached object they were read from; weak: a dropped object takes its view along. */
  private readonly views = new WeakMap<object, SandboxView>();
  /** The spec last read per key, with the UID and generation it was read at. */
  private readonly specs = new Map<string, { uid: string; generation: number; part: SpecPart }>();

  read(key: string, raw: unknown): SandboxView {
    if (typeof raw !== "object" || raw === null) return readSandbox(raw);
    let view = this.views.get(raw);
    if (!view) {
      view = this.parse(key, raw as Stored);
      this.views.set(raw, view);
    }
    return view;
  }

  /** Drop what is remembered of a Sandbox that is gone. */
  forget(key: string): void {
    this.specs.delete(key);
  }

  private parse(key: string, obj: Stored): SandboxView {
    const view = viewOf(obj);
    const { uid, generation } = view.metadata;
    if (!uid || generation === undefined) return Object.assign(view, parseSpec(obj));
    const known = this.specs.get(key);
    if (known && known.uid === uid && known.generation === generation) {
      return Object.assign(view, known.part);
    }
    const part = parseSpec(obj);
    this.specs.set(key, { uid, generation, part });
    return Object.assign(view, part);
  }
}

function viewOf(obj: Stored): SandboxView {
  return { metadata: obj.metadata ?? {}, storedStatus: obj.status, status: readStatus(obj.status) };
}

function parseSpec(obj: Stored): SpecPart {
  const view: SpecPart = {};
  const spec = SandboxSpecSchema.safeParse(obj.spec);
  if (spec.success) {
    view.spec = spec.data;
    view.lifetime = spec.data.lifetime;
    view.backend = spec.data.backend;
    return view;
  }
  view.invalid = spec.error.issues
    .map((i) => `${["spec", ...i.path.map(String)].join(".")}: ${i.message}`)
    .join("; ");
  const specObj = (typeof obj.spec === "object" && obj.spec !== null ? obj.spec : {}) as Record<
    string,
    unknown
  >;
  view.lifetime = parsed(SandboxSpecSchema.shape.lifetime, specObj.lifetime);
  view.backend = parsed(SandboxSpecSchema.shape.backend, specObj.backend);
  return view;
}

/** The sandbox the backends work on; only for a view whose spec is readable. */
export function sandboxOf(view: SandboxView & { spec: SandboxSpec }): Sandbox {
  return {
    apiVersion: API_VERSION,
    kind: SANDBOX_KIND,
    metadata: view.metadata,
    spec: view.spec,
    status: view.status,
  };
}

/**
 * The fields of a stored status the controller can read. An unreadable field is
 * left out (an unreadable condition too, one by one): the next status the
 * controller computes does not carry it, and the write replaces it.
 */
export function readStatus(raw: unknown): SandboxStatus | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === "conditions") {
      if (!Array.isArray(value)) continue;
      const readable = value.flatMap((c) => {
        const r = readCondition(c);
        return r ? [r] : [];
      });
      // Duplicate types cannot be stored (list-map), but take the first to be safe.
      out.conditions = readable.filter(
        (c, i) => readable.findIndex((d) => d.type === c.type) === i,
      );
      continue;
    }
    const field = SandboxStatusSchema.shape[key as keyof typeof SandboxStatusSchema.shape];
    if (!field) continue; // pruned by the apiserver anyway
    const r = field.safeParse(value);
    if (r.success && r.data !== undefined) out[key] = r.data;
  }
  return out as SandboxStatus;
}

const CONDITION_FIELDS = Object.keys(ConditionSchema.shape);
/**
 * Conditions read before, by their fields' values. Reading one through its
 * schema (patterns, an RFC 3339 check, zod's object walk) cost ~30 µs here,
 * ~0.1 ms per status, and every new version of a Sandbox (our own status
 * writes, most of them) is read whole, its unchanged conditions too; many
 * sandboxes share a condition outright (same reason, message and second).
 */
const conditionMemo = new Map<string, Condition | null>();
/** Conditions remembered at most (oldest first out: a miss only costs a parse). */
export const CONDITION_MEMO_MAX = 4096;

/**
 * One stored condition as ConditionSchema reads it (undefined: unreadable).
 * The result depends only on the schema's fields (zod drops any other key), so
 * a condition whose fields hold the same JSON values reads the same: the key
 * is each field's JSON text, "~" for an absent one (JSON never writes "~"
 * alone). Results are frozen: they are shared.
 */
export function readCondition(raw: unknown): Condition | undefined {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const c = raw as Record<string, unknown>;
  let key = "";
  for (const f of CONDITION_FIELDS) key += `${c[f] === undefined ? "~" : JSON.stringify(c[f])}\n`;
  const known = conditionMemo.get(key);
  if (known !== undefined) {
    // Re-inserted last: the map stays in least-recently-used order.
    conditionMemo.delete(key);
    conditionMemo.set(key, known);
    return known ?? undefined;
  }
  const r = ConditionSchema.safeParse(raw);
  const read = r.success ? Object.freeze(r.data) : null;
  conditionMemo.set(key, read);
  if (conditionMemo.size > CONDITION_MEMO_MAX) {
    const oldest = conditionMemo.keys().next().value;
    if (oldest !== undefined) conditionMemo.delete(oldest);
  }
  return read ?? undefined;
}

function parsed<T extends z.ZodType>(schema: T, value: unknown): z.output<T> | undefined {
  const r = schema.safeParse(value);
  return r.success ? r.data : undefined;
}
