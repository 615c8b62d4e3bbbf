// The firewall lets exactly one UID out: the sidecar's. A sidecar started as
// root (docker backend, tests) drops to that UID before it opens a socket, so
// its own connections are the ones the firewall exempts and nothing runs with
// more privilege than it needs.
export function dropPrivileges(uid: number, gid: number = uid): void {
  const current = process.getuid?.();
  if (current === undefined || current === uid) return;
  if (current !== 0) {
    throw new Error(
      `sidecar runs as UID ${current} and cannot switch to UID ${uid}; start it as UID ${uid}`,
    );
  }
  process.setgroups?.([]);
  process.setgid?.(gid);
  process.setuid?.(uid);
  if (process.getuid?.() !== uid) throw new Error(`failed to switch to UID ${uid}`);
}
