// The egress policy file inside the sidecar container. The sidecar follows it
// while it runs, and the lockdown holds no policy, so every change (name and
// address rules, defaultAction) is a file write, not a new sidecar.
//
// Two ways to write it: into a host directory bind-mounted (read-only) as the
// sidecar's policy directory, when the daemon is local (settings.policyDir): a
// write and a rename, so the sidecar never reads half a file; or, with a
// remote daemon, an archive uploaded into the container.
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { posix } from "node:path";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import type { BackendContext } from "../backend.js";
import { tarOf } from "./archive.js";
import { POLICY_DIR, POLICY_FILE } from "./containers.js";

/** Where one sidecar's policy goes: its container, and the host directory mounted as its policy directory (if any). */
export interface PolicyTarget {
  id: string;
  hostDir?: string;
}

export class PolicyDelivery {
  /** Policy text last delivered to each sidecar (by container ID); a cache, re-delivered after a restart. */
  private readonly delivered = new Map<string, string>();
  /** Policy text last written into each host directory; a cache, so an unchanged policy costs no write. */
  private readonly hostWritten = new Map<string, string>();

  constructor(private readonly docker: Docker) {}

  /** Before a sidecar's first start: the sidecar (and the lockdown, to validate it) reads it as it starts. */
  async put({ id, hostDir }: PolicyTarget, policy: string): Promise<void> {
    if (hostDir) await this.forceHost(hostDir, policy);
    else await this.upload(id, policy);
    this.delivered.set(id, policy);
  }

  /** The policy changed: the running sidecar follows its policy file, the workload keeps running. True when written. */
  async deliver(
    sidecar: ContainerInspectInfo,
    hostDir: string | undefined,
    policy: string,
    ctx: BackendContext,
  ): Promise<boolean> {
    const last = this.delivered.get(sidecar.Id);
    if (last === policy || !sidecar.State.Running) return false;
    if (hostDir) await this.writeHost(hostDir, policy);
    else await this.upload(sidecar.Id, policy);
    this.delivered.set(sidecar.Id, policy);
    // After a controller restart the cache is empty: re-delivering the same text is harmless and silent.
    if (last !== undefined) {
      ctx.record({
        type: "Normal",
        reason: "EgressPolicyUpdated",
        message: "delivered the new egress policy to the running sidecar",
      });
    }
    return true;
  }

  /** The host directory and its file, before the sidecar that mounts them is created. */
  async prepare(hostDir: string, policy: string): Promise<void> {
    await this.forceHost(hostDir, policy);
  }

  /**
   * The policy into a host directory, unless this process wrote that same text
   * there last. Needs no container: a sidecar mounting the directory reads it
   * as it starts and follows it while it runs, so a reconcile writes it while
   * it reads the containers instead of after. True when written.
   */
  async writeHost(hostDir: string, policy: string): Promise<boolean> {
    if (this.hostWritten.get(hostDir) === policy) return false;
    await this.forceHost(hostDir, policy);
    return true;
  }

  private async forceHost(hostDir: string, policy: string): Promise<void> {
    this.hostWritten.delete(hostDir); // a failed write must not pass for the old text
    await writeHostFile(hostDir, policy);
    this.hostWritten.set(hostDir, policy);
  }

  forget(id: string): void {
    this.delivered.delete(id);
  }

  /** The sandbox is gone: its host directory goes too. */
  async removeHostDir(hostDir: string | undefined): Promise<void> {
    if (!hostDir) return;
    this.hostWritten.delete(hostDir);
    await rm(hostDir, { recursive: true, force: true });
  }

  private async upload(id: string, policy: string): Promise<void> {
    const archive = await tarOf([
      { name: posix.basename(POLICY_DIR), mode: 0o755, uid: 0, gid: 0 },
      {
        name: POLICY_FILE.slice(posix.dirname(POLICY_DIR).length + 1),
        content: policy,
        mode: 0o644,
        uid: 0,
        gid: 0,
      },
    ]);
    await this.docker.getContainer(id).putArchive(archive, { path: posix.dirname(POLICY_DIR) });
  }
}

/**
 * Written beside the file and renamed over it: the sidecar's directory watch
 * sees one complete file, never a truncated one. Readable by the sidecar's
 * unprivileged UID; written by this process only.
 */
async function writeHostFile(dir: string, policy: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  // Explicit modes: the process's umask must not hide the file from the sidecar.
  await chmod(dir, 0o755);
  const file = posix.join(dir, posix.basename(POLICY_FILE));
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, policy);
  await chmod(tmp, 0o644);
  await rename(tmp, file);
}
