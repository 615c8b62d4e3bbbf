// Times as Kubernetes writes and reads them (metav1.Time, `format: date-time`).
// One formatter and one parser for the whole operator: the controller must read
// every time the CRD admits, in any case RFC 3339 allows ("2024-01-01t00:00:00z"),
// and write the canonical form the apiserver itself writes.

/**
 * RFC 3339 date-time, case-insensitive (section 5.6 allows lower-case t and z).
 * The CRD carries it as a pattern next to `format: date-time`: the apiserver's
 * own date-time check is laxer (any character before the fraction, anything
 * after a second "t"), and what the CRD admits the controller must be able to read.
 * RE2-compatible (the apiserver compiles it in Go).
 */
export const RFC3339_PATTERN =
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

const RFC3339 = new RegExp(RFC3339_PATTERN);

/** Epoch milliseconds of an RFC 3339 time, or undefined when it is not one (or names no real day). */
export function parseTime(value: string): number | undefined {
  if (!RFC3339.test(value)) return undefined;
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  const day = Number(value.slice(8, 10));
  const hour = Number(value.slice(11, 13));
  const minute = Number(value.slice(14, 16));
  const second = Number(value.slice(17, 19));
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  const rest = value.slice(19);
  const fraction = /^\.([0-9]+)/.exec(rest)?.[1];
  const millis = fraction ? Number(`0.${fraction}`) * 1000 : 0;
  const zone = rest.slice(fraction ? fraction.length + 1 : 0);
  const offsetMin =
    zone === "Z" || zone === "z"
      ? 0
      : (zone[0] === "-" ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC maps years 0-99 to 1900-1999; RFC 3339 years are literal.
  const literal = year < 100 ? new Date(utc).setUTCFullYear(year) : utc;
  return Math.floor(literal + millis) - offsetMin * 60_000;
}

export const isRfc3339 = (value: string): boolean => parseTime(value) !== undefined;

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** RFC 3339 at second precision in UTC, as metav1.Time serializes ("2024-01-01T00:00:00Z"). */
export function rfc3339(t: Date | number | string): string {
  const ms = typeof t === "number" ? t : new Date(t).getTime();
  return `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}
