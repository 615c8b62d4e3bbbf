// Which Docker host paths a sandbox may mount: the operator's
// --docker-allowed-host-paths, judged purely here (table-tested in
// host-paths.test.ts); resolving symlinks is the shell's part (resolve-host-path.ts).
import { posix } from "node:path";

export interface AllowedHostPath {
  /** Absolute, normalised, no trailing "/" (except "/" itself). */
  prefix: string;
  /** The entry ended in ":rw": mounts under it may be writable when they ask. */
  writable: boolean;
}

/**
 * Parse the flag: comma-separated absolute prefixes, each optionally followed
 * by ":rw". Empty means none. Throws on a relative or non-normalised entry:
 * an allowlist that does not say what it means is refused at start-up.
 */
export function parseAllowedHostPaths(flag: string | undefined): AllowedHostPath[] {
  if (!flag?.trim()) return [];
  return flag.split(",").map((raw) => {
    const entry = raw.trim();
    const writable = entry.endsWith(":rw");
    const prefix = writable ? entry.slice(0, -3) : entry;
    if (!prefix.startsWith("/")) throw new Error(`"${entry}" is not an absolute path`);
    if (prefix.includes(":")) throw new Error(`"${entry}": only a ":rw" suffix is allowed`);
    const normal = normalise(prefix);
    if (normal !== prefix && `${normal}/` !== prefix) {
      throw new Error(`"${entry}" is not normalised (write "${normal}")`);
    }
    return { prefix: normal, writable };
  });
}

/** posix.normalize without a trailing "/" (except for "/"). */
export function normalise(path: string): string {
  const n = posix.normalize(path);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** Whether `path` is `prefix` or lies beneath it (segment-wise: /srv/a is not under /srv/ab). */
export function isUnder(path: string, prefix: string): boolean {
  if (prefix === "/") return true;
  return path === prefix || path.startsWith(`${prefix}/`);
}

export type HostPathVerdict =
  | { allowed: true; readOnly: boolean }
  | { allowed: false; message: string };

/**
 * Judge one mount. `path` is what the spec says; `resolved` what it resolves
 * to on the host (symlinks followed), when the operator could resolve it.
 * Both must lie under an entry: the spec's path (so a user cannot name a
 * path outside and hope it resolves inside) and the resolved one (so a
 * symlink inside cannot lead outside). Writable needs `readOnly: false`
 * and an entry with ":rw" covering the resolved path (what is mounted).
 */
export function judgeHostPath(
  path: string,
  resolved: string | undefined,
  readOnly: boolean | undefined,
  allow: readonly AllowedHostPath[],
): HostPathVerdict {
  const wantsWrite = readOnly === false;
  const real = resolved ?? normalise(path);
  const refuse = (why: string): HostPathVerdict => ({
    allowed: false,
    message: `host path ${path}${real !== path ? ` (resolves to ${real})` : ""} ${why}`,
  });
  if (allow.length === 0) {
    return refuse(
      "is not allowed: the operator allows no host paths (--docker-allowed-host-paths is empty)",
    );
  }
  const list = allow.map((a) => `${a.prefix}${a.writable ? ":rw" : ""}`).join(", ");
  const named = allow.some((a) => isUnder(normalise(path), a.prefix));
  // What is mounted is the resolved path: its entry decides, write access included.
  const covering = allow.filter((a) => isUnder(real, a.prefix));
  if (!named || covering.length === 0) {
    return refuse(`is outside --docker-allowed-host-paths (${list})`);
  }
  if (!wantsWrite) return { allowed: true, readOnly: true };
  if (covering.some((a) => a.writable)) return { allowed: true, readOnly: false };
  return refuse(
    `may only be mounted read-only: no ":rw" entry of --docker-allowed-host-paths (${list}) covers it`,
  );
}
