// The last inspect of each sandbox's two containers, kept for as long as the
// daemon's events stream says nothing happened to them. A warm claim's
// reconcile (a policy delivered to a running sandbox) otherwise starts with
// two inspects of containers nobody touched since they were last read; in a
// burst of claims those queue behind the daemon's other work (the pool's
// refill creating and starting containers): 0.1-0.2 s p50, up to 0.8 s p90
// per claimed sandbox (bench/results/pools-burst.md).
//
// Correctness rests on the events stream, as the Sandbox cache rests on the
// apiserver's watch:
//   - every event about a container of a sandbox drops what is kept for it
//     (before the event's reconcile is queued), except those that change
//     nothing an inspect is used for here (exec_*, archive copies, attach,
//     resize, top); the periodic re-list's findings drop it too;
//   - an inspect made while an event arrived is not kept (each read carries
//     the sequence number it started at);
//   - nothing is kept, and nothing served, while the stream is not open, and
//     opening it again drops everything: what happened in between is unknown.
// An event still on its way when a reconcile reads the entry leaves that
// reconcile a moment behind, as a lagging informer does; the event's own
// reconcile follows and reads the daemon.
import type { ContainerInspectInfo } from "dockerode";

/** Event actions that change nothing an inspect is used for (state, labels, network mode, ports). */
const HARMLESS_ACTIONS = new Set([
  "exec_create",
  "exec_start",
  "exec_die",
  "exec_detach",
  "archive-path",
  "extract-to-dir",
  "copy",
  "attach",
  "detach",
  "resize",
  "top",
  "export",
]);

/** Whether a container event (its Action, e.g. "exec_start: sh -c ...") may have changed what an inspect says. */
export function invalidates(action: string | undefined): boolean {
  if (!action) return true;
  const verb = action.split(":", 1)[0]!.trim();
  return !HARMLESS_ACTIONS.has(verb);
}

export interface ObservedPair {
  sidecar: ContainerInspectInfo | undefined;
  workload: ContainerInspectInfo | undefined;
}

interface Entry extends ObservedPair {
  uid: string;
}

/** Entries kept at most (one per sandbox on this daemon); past it, the oldest go. */
const MAX_ENTRIES = 50_000;

export class ContainerObservations {
  private live = false;
  private seq = 0;
  /** Reads started before this are not kept (the stream was re-opened, or memory trimmed). */
  private floor = 0;
  /** Sandbox key -> the sequence number of the last event about its containers. */
  private readonly changedAt = new Map<string, number>();
  private readonly entries = new Map<string, Entry>();

  /** The events stream is open: from now on it tells of every change. */
  connected(): void {
    this.restart(true);
  }

  /** The events stream is closed: nothing is known to be current any more. */
  disconnected(): void {
    this.restart(false);
  }

  /** Either way, what was kept (and any read in flight) belongs to a stream that ended. */
  private restart(live: boolean): void {
    this.live = live;
    this.floor = ++this.seq;
    this.entries.clear();
    this.changedAt.clear();
  }

  /** Something happened to a container of sandbox `key` ("namespace/name"). */
  changed(key: string): void {
    this.entries.delete(key);
    this.changedAt.set(key, ++this.seq);
    if (this.changedAt.size > MAX_ENTRIES) {
      this.changedAt.clear();
      this.floor = ++this.seq;
    }
  }

  /** Taken before the reads whose result may be kept (see keep). */
  mark(): number {
    return this.seq;
  }

  /** What was kept for the sandbox (this incarnation: `uid`), if still current. */
  get(key: string, uid: string): ObservedPair | undefined {
    if (!this.live) return undefined;
    const e = this.entries.get(key);
    return e && e.uid === uid ? { sidecar: e.sidecar, workload: e.workload } : undefined;
  }

  /** Keep what reads started at `mark` found, unless the stream told of a change since. */
  keep(key: string, uid: string, mark: number, pair: ObservedPair): void {
    if (!this.live || mark < this.floor || (this.changedAt.get(key) ?? 0) > mark) return;
    this.entries.delete(key);
    this.entries.set(key, { uid, ...pair });
    if (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  /** The sandbox is gone (its containers removed by the backend). */
  forget(key: string): void {
    this.entries.delete(key);
  }
}
