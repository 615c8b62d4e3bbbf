// The API side of the pod backend's workspace (./workspace.ts decides): find
// or create the sandbox's PVC before its Pod, so the Pod is never created
// mounting a claim that cannot come. Reads come from the PVC informer (labelled
// claims); a claim it does not show (an `existing` PVC made by hand, or a
// cache that lags a create) is read by name, and only while the sandbox has no
// Pod: once a Pod mounts the claim, the kubelet holds it (pvc-protection) and
// nothing is read or written for it again.
import type * as k8s from "@kubernetes/client-node";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { ConflictError } from "../../controller/errors.js";
import type { KindClient } from "../../controller/kind-client.js";
import type { BackendContext } from "../backend.js";
import { ignoreNotFound, isConflictError } from "../errors.js";
import {
  type ClaimVerdict,
  desiredWorkspaceClaim,
  judgeExistingClaim,
  judgeTemplateClaim,
  type RestoreSource,
  workspaceClaimName,
} from "./workspace.js";

/** What a SandboxSnapshot offers a restore on this backend. */
export type SnapshotSource =
  | ({ ready: true } & RestoreSource)
  | { ready: false; message: string; stalled: boolean };

export interface WorkspaceClaimsDeps {
  api: KindClient<k8s.V1PersistentVolumeClaim>;
  cache: { get(key: string): k8s.V1PersistentVolumeClaim | undefined };
  /** The VolumeSnapshot a SandboxSnapshot of the namespace names, once it is ready. */
  snapshotSource(namespace: string, name: string, signal?: AbortSignal): Promise<SnapshotSource>;
}

export type WorkspaceOutcome = ClaimVerdict & { claim?: k8s.V1PersistentVolumeClaim };

export class WorkspaceClaims {
  constructor(private readonly deps: WorkspaceClaimsDeps) {}

  /** The claim from the cache, if the informer shows it. */
  cached(sandbox: Sandbox): k8s.V1PersistentVolumeClaim | undefined {
    return this.deps.cache.get(`${sandbox.metadata.namespace}/${workspaceClaimName(sandbox)}`);
  }

  /**
   * Make sure the workspace claim is there for a Pod to mount. `podExists`: a
   * Pod of this sandbox exists already (it mounts the claim; nothing to do).
   */
  async ensure(
    sandbox: Sandbox,
    ctx: BackendContext,
    podExists: boolean,
  ): Promise<WorkspaceOutcome> {
    const w = sandbox.spec.workspace;
    if (!w) return { use: true };
    const namespace = sandbox.metadata.namespace!;
    const name = workspaceClaimName(sandbox);
    const cached = this.cached(sandbox);
    if (podExists) return { use: true, claim: cached };

    if (w.existing) {
      const claim =
        cached ?? (await ignoreNotFound(this.deps.api.read(name, namespace, ctx.signal)));
      return { ...judgeExistingClaim(name, claim), claim };
    }
    if (cached) return { ...judgeTemplateClaim(sandbox, cached), claim: cached };

    let snapshot: RestoreSource | undefined;
    if (w.fromSnapshot) {
      const source = await this.deps.snapshotSource(namespace, w.fromSnapshot.name, ctx.signal);
      if (!source.ready) {
        return {
          use: false,
          reason: ConditionReason.SnapshotNotReady,
          message: source.message,
          stalled: source.stalled,
        };
      }
      snapshot = source;
    }
    const desired = desiredWorkspaceClaim(sandbox, snapshot)!;
    try {
      const created = await this.deps.api.create(namespace, desired, ctx.signal);
      ctx.record({
        type: "Normal",
        reason: "WorkspaceCreated",
        message: snapshot
          ? `created PVC ${name} from VolumeSnapshot ${snapshot.volumeSnapshot}`
          : `created PVC ${name}`,
      });
      return { use: true, claim: created };
    } catch (err) {
      if (!isConflictError(err)) throw err;
    }
    // There already, not (yet) in the cache: retained by a namesake, or someone else's.
    const existing = await ignoreNotFound(this.deps.api.read(name, namespace, ctx.signal));
    if (!existing) throw new ConflictError(`PVC ${name} went away while being created`);
    return { ...judgeTemplateClaim(sandbox, existing), claim: existing };
  }
}
