// The shell around host-paths.ts: resolve each hostPath mount's symlinks on
// this machine (when the Docker host is this machine) and judge it. A refused
// path is a PermanentError naming it: the sandbox gets a condition, no
// container is created, nothing is mounted.
import { realpath } from "node:fs/promises";
import { ConditionReason } from "../../api/conditions.js";
import type { Sandbox } from "../../api/sandbox.js";
import { PermanentError } from "../../controller/errors.js";
import type { HostBind } from "./containers.js";
import { type AllowedHostPath, judgeHostPath } from "./host-paths.js";

/**
 * `local`: the Docker host's file system is this process's (a unix socket),
 * so symlinks can be resolved; a path that does not exist is refused (Docker
 * would refuse the bind anyway, and a missing path cannot be vouched for).
 * On a remote host the spec's path is judged as written: Docker resolves it there.
 */
export async function resolveHostBinds(
  sandbox: Sandbox,
  allow: readonly AllowedHostPath[],
  local: boolean,
): Promise<HostBind[]> {
  const binds: HostBind[] = [];
  for (const m of sandbox.spec.mounts ?? []) {
    if (!m.hostPath) continue;
    let resolved: string | undefined;
    if (local) {
      try {
        resolved = await realpath(m.hostPath.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error";
        throw new PermanentError(
          ConditionReason.HostPathNotAllowed,
          `spec.mounts (${m.mountPath}): host path ${m.hostPath.path} cannot be resolved on the Docker host (${code})`,
        );
      }
    }
    const verdict = judgeHostPath(m.hostPath.path, resolved, m.hostPath.readOnly, allow);
    if (!verdict.allowed) {
      throw new PermanentError(
        ConditionReason.HostPathNotAllowed,
        `spec.mounts (${m.mountPath}): ${verdict.message}; nothing was mounted`,
      );
    }
    binds.push({
      source: resolved ?? m.hostPath.path,
      target: m.mountPath,
      readOnly: verdict.readOnly,
    });
  }
  return binds;
}
