// Kubernetes resource quantities ("500m", "1.5", "512Mi", "1e3") as numbers, for
// backends that speak bytes and nano-CPUs rather than quantities. The CRD has
// already checked the syntax (CEL isQuantity); this only converts.
const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/** The value of a quantity; throws on text that is not one. */
export function parseQuantity(value: number | string): number {
  if (typeof value === "number") return value;
  const m = QUANTITY.exec(value.trim());
  if (!m) throw new Error(`"${value}" is not a Kubernetes quantity`);
  const [, digits, exponent, suffix = ""] = m;
  const base = Number(digits);
  if (exponent) return base * 10 ** Number(exponent.slice(1));
  return base * (BINARY[suffix] ?? DECIMAL[suffix]!);
}
