// The sidecars' acknowledgements, read back (src/egress/policy-ack.ts): one
// host file per sandbox, `<root>/<sandbox UID>`, bind-mounted into its sidecar
// alone at the contract's POLICY_ACK_FILE, and one inotify watch on `root` for
// all of them (a write through a bind mount is reported on the file's host
// directory). The watch only wakes things up: a reconcile waiting for its
// acknowledgement, or, when none waits, the sandbox's reconcile through the
// work queue. What counts is always read from the file itself, so an event
// lost (inotify's queue overflowing) costs only the recheck the backend
// schedules for a sandbox left waiting.
import { type FSWatcher, watch } from "node:fs";
import { chmod, mkdir, open, readFile, rm } from "node:fs/promises";
import { posix } from "node:path";
import { ackAnswers, type PolicyAckRecord, parsePolicyAck } from "../../egress/policy-ack.js";
import type { Logger } from "../../observability/logger.js";

/** Sandboxes remembered (bounded like the pod backend's AppliedPolicies); the oldest go first. */
export const POLICY_ACKS_MAX = 20_000;

interface Entry {
  /** The sandbox's work-queue key ("namespace/name"). */
  key: string;
  /** The digest a reconcile found not yet acknowledged, and left to the watch (undefined: nothing pending). */
  pending?: string;
}

export class PolicyAcks {
  private readonly entries = new Map<string, Entry>();
  private readonly waiters = new Map<string, Set<(r: PolicyAckRecord | undefined) => void>>();
  private watcher?: FSWatcher;

  constructor(
    private readonly deps: {
      /** The host directory holding every sandbox's acknowledgement file. */
      root: string;
      enqueue(key: string): void;
      log: Logger;
      max?: number;
    },
  ) {}

  /** The host file a sandbox's sidecar writes its acknowledgements into. */
  fileOf(uid: string): string {
    return posix.join(this.deps.root, uid);
  }

  /**
   * The file must exist before the container that mounts it is created (or
   * started again: someone may have removed it). `fresh`: emptied, for a new
   * sidecar, which writes its first record before it says it is ready.
   *
   * The directory is the controller's alone (0700): no other host user
   * reaches the files. A file is writable by any UID (0622), since the
   * sidecar's UID on the host is not known here (root without
   * CAP_DAC_OVERRIDE in the container, or another UID under user-namespace
   * remapping); inside the container only the sidecar sees it.
   */
  async prepare(uid: string, fresh: boolean): Promise<void> {
    await mkdir(this.deps.root, { recursive: true, mode: 0o700 });
    await chmod(this.deps.root, 0o700);
    const handle = await open(this.fileOf(uid), fresh ? "w" : "a", 0o622);
    try {
      await handle.chmod(0o622);
    } finally {
      await handle.close();
    }
    this.ensureWatch();
  }

  /** Remembers which sandbox a UID's file belongs to, for the work queue. */
  track(uid: string, key: string): void {
    const entry = this.entries.get(uid);
    this.entries.delete(uid);
    this.entries.set(uid, { key, pending: entry?.key === key ? entry.pending : undefined });
    const max = this.deps.max ?? POLICY_ACKS_MAX;
    while (this.entries.size > max) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.ensureWatch();
  }

  /** The record in the sandbox's file now (undefined: none yet, torn, or no file). */
  async read(uid: string): Promise<PolicyAckRecord | undefined> {
    try {
      return parsePolicyAck(await readFile(this.fileOf(uid), "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /**
   * The record once it names `digest` (applied or refused), or whatever the
   * file holds after `timeoutMs`. Woken by the watch: no polling.
   */
  async waitFor(
    uid: string,
    digest: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<PolicyAckRecord | undefined> {
    // Registered before the read: a write between the two is not missed.
    let wake!: (r: PolicyAckRecord | undefined) => void;
    const woken = new Promise<PolicyAckRecord | undefined>((resolve) => {
      wake = resolve;
    });
    const onRecord = (r: PolicyAckRecord | undefined) => {
      if (ackAnswers(r, digest)) wake(r);
    };
    const set = this.waiters.get(uid) ?? new Set();
    this.waiters.set(uid, set);
    set.add(onRecord);
    let timer: NodeJS.Timeout | undefined;
    const aborted = () => wake(undefined);
    try {
      const now = await this.read(uid);
      if (ackAnswers(now, digest)) return now;
      signal?.addEventListener("abort", aborted, { once: true });
      timer = setTimeout(() => wake(undefined), timeoutMs);
      const got = await woken;
      signal?.throwIfAborted();
      return got ?? (await this.read(uid));
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
      set.delete(onRecord);
      if (!set.size) this.waiters.delete(uid);
    }
  }

  /**
   * A reconcile found `digest` not yet acknowledged and returned: the watch
   * enqueues the sandbox once the file names it. Call before the last read,
   * so a write between that read and this call is not missed. True when it
   * was already left pending for that digest (an earlier reconcile waited in
   * vain too).
   */
  leavePending(uid: string, digest: string): boolean {
    const entry = this.entries.get(uid);
    const already = entry?.pending === digest;
    if (entry) entry.pending = digest;
    return already;
  }

  /** The acknowledgement was seen by a reconcile: nothing left to wake. */
  settle(uid: string): void {
    const entry = this.entries.get(uid);
    if (entry) entry.pending = undefined;
  }

  /** The sandbox is gone: its file and what is remembered of it. */
  async remove(uid: string): Promise<void> {
    this.entries.delete(uid);
    await rm(this.fileOf(uid), { force: true });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private ensureWatch(): void {
    if (this.watcher) return;
    try {
      const w = watch(this.deps.root, { persistent: false }, (_event, name) => {
        if (name) void this.changed(String(name));
        // No name: say nothing was missed, and look at every sandbox waiting.
        else for (const [uid, e] of this.entries) if (e.pending) void this.changed(uid);
      });
      w.on("error", (err) => {
        // The directory went (or the watch broke): watched again at the next prepare or track.
        this.deps.log.warn({ err, dir: this.deps.root }, "policy acknowledgement watch failed");
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch (err) {
      // No directory yet (no sandbox prepared one), or no inotify instance to
      // be had (EMFILE: fs.inotify.max_user_instances, shared by every process
      // of this user): tried again at the next prepare or track; meanwhile a
      // sandbox left waiting is rechecked on a timer (watching() is false).
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.deps.log.warn(
          { err, dir: this.deps.root },
          "cannot watch the policy acknowledgements; rechecking waiting sandboxes on a timer",
        );
    }
  }

  /** Whether the watch is in place (else only the backend's rechecks bring a waiting sandbox back). */
  watching(): boolean {
    return this.watcher !== undefined;
  }

  private async changed(uid: string): Promise<void> {
    const waiting = this.waiters.get(uid);
    const entry = this.entries.get(uid);
    if (!waiting?.size && !entry?.pending) return;
    let record: PolicyAckRecord | undefined;
    try {
      record = await this.read(uid);
    } catch (err) {
      this.deps.log.warn({ err, uid }, "cannot read a policy acknowledgement");
      return;
    }
    if (waiting?.size) {
      for (const wake of [...waiting]) wake(record);
      // A reconcile in progress takes it; it leaves the sandbox pending again if not.
      return;
    }
    if (entry?.pending && ackAnswers(record, entry.pending)) {
      entry.pending = undefined;
      this.deps.enqueue(entry.key);
    }
  }
}
