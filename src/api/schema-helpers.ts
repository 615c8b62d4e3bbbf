// Building blocks for zod schemas that double as Kubernetes structural schemas.
//
// Every schema here carries two things: the runtime check zod performs in the
// controller, and the metadata the CRD generator turns into OpenAPI (description,
// CEL rules, list semantics). Keeping both on one value is what makes the zod
// schema the single source of truth.
import { z } from "zod";
import { isRfc3339, RFC3339_PATTERN } from "../kube/time.js";

/** A CEL rule as the apiserver evaluates it (`x-kubernetes-validations` entry). */
export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** JSONPath-ish field the error is reported on, relative to the schema (e.g. ".expiresAt"). */
  fieldPath?: string;
  reason?:
    | "FieldValueInvalid"
    | "FieldValueForbidden"
    | "FieldValueRequired"
    | "FieldValueDuplicate";
}

const VALIDATIONS = "x-kubernetes-validations";

/** Attach a CEL rule to a schema, keeping rules attached earlier. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  return schema.meta({ ...schema.meta(), [VALIDATIONS]: [...rulesOf(schema), ...rules] }) as T;
}

/**
 * Rules already on a schema, including those on the schema a `.default()` or
 * `.optional()` wraps: the JSON Schema of a wrapper merges its inner schema's
 * metadata shallowly, so the wrapper must carry the whole list.
 */
function rulesOf(schema: z.ZodType): CelRule[] {
  const own = schema.meta()?.[VALIDATIONS] as CelRule[] | undefined;
  if (own) return own;
  const def = schema._zod.def as { innerType?: z.ZodType };
  return def.innerType ? rulesOf(def.innerType) : [];
}

/**
 * A cross-field rule enforced in both places: as CEL by the apiserver at admission,
 * and as a zod refinement in the controller (which also reads objects that were
 * stored before a rule existed). The two must agree; the admission corpus tests
 * the CEL side, unit tests the zod side.
 */
export function crossFieldRule<T extends z.ZodType>(
  schema: T,
  rule: CelRule & { path: string[] },
  check: (value: z.output<T>) => boolean,
): T {
  const { path, ...celRule } = rule;
  const refined = schema.refine(check, { message: rule.message ?? rule.rule, path });
  return cel(refined as unknown as T, { fieldPath: `.${path.join(".")}`, ...celRule });
}

/** Describe a schema: every field of the CRD must have a description (`kubectl explain`). */
export function doc<T extends z.ZodType>(schema: T, description: string): T {
  return schema.meta({ ...schema.meta(), description }) as T;
}

/** Kubernetes list semantics for server-side apply and merge. */
export function listType<T extends z.ZodType>(
  schema: T,
  type: "atomic" | "set" | "map",
  mapKeys?: string[],
): T {
  const extra: Record<string, unknown> = { "x-kubernetes-list-type": type };
  if (mapKeys) extra["x-kubernetes-list-map-keys"] = mapKeys;
  return schema.meta({ ...schema.meta(), ...extra }) as T;
}

// ---- Patterns shared by several fields (RE2-compatible: the apiserver compiles them in Go).

/** RFC 1123 label (Kubernetes "DNS label"). */
export const DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/** RFC 1123 subdomain. */
export const DNS_SUBDOMAIN_PATTERN = `^${DNS_LABEL}(\\.${DNS_LABEL})*$`;
/** RFC 1035 label: starts with a letter (Service names). */
export const DNS_1035_LABEL_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$";
/** IANA service name, as Kubernetes uses for port names. */
export const IANA_SVC_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/** Environment variable names Kubernetes accepts. */
export const ENV_VAR_NAME_PATTERN = "^[-._a-zA-Z][-._a-zA-Z0-9]*$";
/** Kubernetes resource.Quantity, string form. */
export const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

export function regex(pattern: string): RegExp {
  return new RegExp(pattern);
}

/** Bounded string: every string in the CRD has a maxLength so CEL cost is bounded. */
export function boundedString(max: number, min = 0): z.ZodString {
  return z.string().min(min).max(max);
}

/**
 * A resource.Quantity: an integer or a string like "500m" / "512Mi". Rendered as
 * `x-kubernetes-int-or-string` with the quantity pattern, checked again with CEL's
 * `isQuantity` so values like "1.2.3Mi" that slip past a regex are caught too.
 */
export function quantity(): z.ZodType<number | string> {
  const schema = z
    .union([z.int().min(0), z.string().max(64).regex(regex(QUANTITY_PATTERN))])
    .meta({ "x-kubernetes-int-or-string": true });
  return cel(schema, {
    rule: "isQuantity(string(self))",
    message: 'must be a Kubernetes quantity such as "500m", "2" or "512Mi"',
  }) as unknown as z.ZodType<number | string>;
}

/**
 * An RFC 3339 date-time as the CRD admits it (`format: date-time` plus a
 * pattern), and as the controller reads it: every case RFC 3339 allows,
 * "2024-01-01t00:00:00z" included, a fraction and any UTC offset. The pattern
 * makes the apiserver refuse what its laxer date-time check would let through
 * but no reader could make sense of; the refinement checks the calendar.
 */
export function dateTime(): z.ZodString {
  return z
    .string()
    .regex(regex(RFC3339_PATTERN), { message: "must be an RFC 3339 date-time" })
    .refine(isRfc3339, { message: "must name a real day and time" })
    .meta({ format: "date-time" }) as unknown as z.ZodString;
}

/**
 * metadata.generation and the observedGeneration fields that copy it. int64 in
 * Kubernetes, but bounded here to what a JSON number keeps exactly: a larger
 * value would be read back as a float and written back as one, which the
 * apiserver refuses. No object is updated 2^53 times.
 */
export function generation(): z.ZodOptional<z.ZodInt> {
  return z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional();
}
