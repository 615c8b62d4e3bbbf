// The periodic re-list: one list call per kind of object, comparing what is on
// the Docker host with the Sandboxes in the cache.
//   - a sandbox whose containers changed state since the last sweep is
//     reconciled (the events stream may have dropped something);
//   - anything labelled as ours whose Sandbox no longer exists, or is another
//     incarnation (another UID), is an orphan and is removed: what a crash
//     mid-create, a deletion while the operator was down, or a lost finalizer left.
import type Docker from "dockerode";
import type { Logger } from "../../observability/logger.js";
import { ignoreGoneOrConflict } from "./client.js";
import { DockerLabels, ownedFilter, sandboxKeyOf } from "./names.js";
import { sweepable } from "./workspace.js";

export interface SweepOptions {
  docker: Docker;
  owner: string;
  /** UID of the live Sandbox under this key that uses the docker backend, if any. */
  liveUid(key: string): string | undefined;
  /** Whether this controller watches the namespace: it judges nothing it cannot see. */
  watches(namespace: string): boolean;
  /** Whether orphans may be judged now: this replica leads and its caches have synced. */
  canCollect(): boolean;
  onChange(key: string): void;
  onOrphanRemoved?(kind: "container" | "network" | "volume", name: string): void;
  log: Logger;
}

interface Labelled {
  labels: Record<string, string> | undefined;
}

export class Sweeper {
  private fingerprints = new Map<string, string>();

  constructor(private readonly opts: SweepOptions) {}

  async sweep(): Promise<void> {
    const { docker, owner } = this.opts;
    const containers = await docker.listContainers({ all: true, filters: ownedFilter(owner) });
    this.relist(containers);
    if (!this.opts.canCollect()) return;

    for (const c of containers) {
      if (!this.isOrphan({ labels: c.Labels })) continue;
      await ignoreGoneOrConflict(docker.getContainer(c.Id).remove({ force: true, v: true }));
      this.removed("container", c.Names[0]?.replace(/^\//, "") ?? c.Id);
    }
    for (const n of await docker.listNetworks({ filters: ownedFilter(owner) })) {
      if (!this.isOrphan({ labels: n.Labels })) continue;
      await ignoreGoneOrConflict(docker.getNetwork(n.Id).remove());
      this.removed("network", n.Name);
    }
    const { Volumes: volumes } = await docker.listVolumes({ filters: ownedFilter(owner) });
    for (const v of volumes ?? []) {
      // A retained workspace outlives its sandbox on purpose.
      if (!sweepable(v.Labels) || !this.isOrphan({ labels: v.Labels ?? undefined })) continue;
      await ignoreGoneOrConflict(docker.getVolume(v.Name).remove());
      this.removed("volume", v.Name);
    }
  }

  private isOrphan({ labels }: Labelled): boolean {
    const key = sandboxKeyOf(labels);
    const uid = labels?.[DockerLabels.sandboxUid];
    if (!key || !uid) return false; // not made by a sandbox: not ours to judge
    if (!this.opts.watches(key.slice(0, key.indexOf("/")))) return false;
    return this.opts.liveUid(key) !== uid;
  }

  private removed(kind: "container" | "network" | "volume", name: string): void {
    this.opts.log.info({ kind, name }, "removed orphaned docker object");
    this.opts.onOrphanRemoved?.(kind, name);
  }

  /** Reconcile every sandbox whose containers look different from the last sweep. */
  private relist(containers: Docker.ContainerInfo[]): void {
    const now = new Map<string, string[]>();
    for (const c of containers) {
      const key = sandboxKeyOf(c.Labels);
      if (!key) continue;
      const parts = now.get(key) ?? [];
      // State plus the health part of Status ("Up 2 minutes (healthy)"): not the clock.
      const health = /\((healthy|unhealthy|health: starting)\)/.exec(c.Status)?.[1] ?? "";
      parts.push(`${c.Id}:${c.State}:${health}`);
      now.set(key, parts);
    }
    const next = new Map<string, string>();
    for (const [key, parts] of now) next.set(key, parts.sort().join(","));
    for (const key of new Set([...next.keys(), ...this.fingerprints.keys()])) {
      if (next.get(key) !== this.fingerprints.get(key)) this.opts.onChange(key);
    }
    this.fingerprints = next;
  }
}
