// The docker backend with what keeps it informed: the events watcher and the
// periodic sweep (re-list and orphan collection).
import type Docker from "dockerode";
import type { SandboxSnapshot } from "../../api/snapshot.js";
import type { Logger } from "../../observability/logger.js";
import { DockerBackend } from "./backend.js";
import { ContainerObservations, invalidates } from "./container-observations.js";
import type { DockerSettings } from "./containers.js";
import { Sweeper } from "./sweep.js";
import { DockerWatcher } from "./watch.js";

export { dockerClient } from "./client.js";
export type { DockerSettings } from "./containers.js";

export interface DockerRuntimeOptions {
  docker: Docker;
  settings: DockerSettings;
  /** Reconcile this sandbox ("namespace/name"). */
  enqueue(key: string): void;
  /** Reconcile every sandbox on the docker backend (after the daemon comes back). */
  enqueueAll(): void;
  /** UID of the live Sandbox under this key that uses the docker backend, if any. */
  liveUid(key: string): string | undefined;
  /** Whether this controller watches the namespace (it judges only what it can see). */
  watches(namespace: string): boolean;
  /** Orphans are judged only by the leader, from synced caches. */
  canCollect(): boolean;
  onOrphanRemoved?(kind: string): void;
  /** A SandboxSnapshot from the cache, for spec.workspace.fromSnapshot (restores). */
  snapshot?(namespace: string, name: string): SandboxSnapshot | undefined;
  sweepIntervalMs?: number;
  log: Logger;
}

export interface DockerRuntime {
  backend: DockerBackend;
  /** Why the daemon is not usable, or undefined (for /readyz). */
  unavailable(): string | undefined;
  /** Re-list and collect orphans now (also runs periodically and on reconnect). */
  sweep(): Promise<void>;
  stop(): Promise<void>;
}

export function startDockerRuntime(opts: DockerRuntimeOptions): DockerRuntime {
  const log = opts.log.child({ backend: "docker" });
  // Kept current by the events stream below (container-observations.ts).
  const observations = new ContainerObservations();
  const backend = new DockerBackend({
    docker: opts.docker,
    settings: opts.settings,
    enqueue: opts.enqueue,
    observations,
    ...(opts.snapshot ? { snapshot: opts.snapshot } : {}),
    log,
  });
  const sweeper = new Sweeper({
    docker: opts.docker,
    owner: opts.settings.owner,
    liveUid: opts.liveUid,
    watches: opts.watches,
    canCollect: opts.canCollect,
    // The re-list found what the stream did not say: what is kept for it goes too.
    onChange: (key) => {
      observations.changed(key);
      opts.enqueue(key);
    },
    onOrphanRemoved: opts.onOrphanRemoved,
    log,
  });
  const watcher = new DockerWatcher({
    docker: opts.docker,
    owner: opts.settings.owner,
    // Dropped before the reconcile is queued: it reads the daemon, not the old inspect.
    onChange: (key, action) => {
      if (invalidates(action)) observations.changed(key);
      opts.enqueue(key);
    },
    onConnected: () => {
      observations.connected();
      opts.enqueueAll();
    },
    onDisconnected: () => observations.disconnected(),
    onSweep: () => sweeper.sweep(),
    sweepIntervalMs: opts.sweepIntervalMs,
    log,
  });
  return {
    backend,
    unavailable: () => watcher.unavailable(),
    sweep: () => watcher.sweep(),
    stop: () => watcher.stop(),
  };
}
