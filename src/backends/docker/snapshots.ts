// Workspace snapshots on the docker backend: a tar of the workspace volume,
// stored as one file (workspace.tar) in a snapshot volume of its own, with its
// SHA-256 and length beside it (workspace.sha256, written last: its presence
// is what says the copy is complete, so a copy interrupted by a restart is
// taken again). A restore streams the tar into the new workspace, hashing it
// on the way, and fails when the digest differs from the one recorded.
//
// Everything goes through the Engine's archive endpoints on a helper
// container that is created and never started (no process runs, no network),
// so no tool is needed in any image and nothing of the host is bind-mounted.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type Docker from "dockerode";
import { extract, pack } from "tar-stream";
import { MANAGED_BY } from "../../api/labels.js";
import { EGRESS_EXECUTABLE } from "../../egress/contract.js";
import { ignoreGoneOrConflict, statusCode } from "./client.js";
import { DockerLabels } from "./names.js";

export const SNAPSHOT_TAR = "workspace.tar";
export const SNAPSHOT_SUM = "workspace.sha256";

export interface SnapshotRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface SnapshotCopy {
  handle: string;
  sizeBytes: number;
  checksum: string;
}

/** `sbx.<ns>.snap.<name>.<uid8>`: five parts, so never a sandbox's name (four). */
export function snapshotVolumeName(s: SnapshotRef): string {
  return `sbx.${s.namespace}.snap.${s.name}.${s.uid.slice(0, 8)}`;
}

export function snapshotLabels(s: SnapshotRef, owner: string): Record<string, string> {
  return {
    [DockerLabels.managedBy]: MANAGED_BY,
    [DockerLabels.owner]: owner,
    [DockerLabels.namespace]: s.namespace,
    [DockerLabels.role]: "snapshot",
    [DockerLabels.snapshot]: s.name,
    [DockerLabels.snapshotUid]: s.uid,
  };
}

/** "sha256:<hex> <bytes>" as stored in workspace.sha256. */
export function parseSumFile(text: string): { checksum: string; sizeBytes: number } | undefined {
  const m = /^(sha256:[0-9a-f]{64}) ([0-9]+)\s*$/.exec(text);
  return m ? { checksum: m[1]!, sizeBytes: Number(m[2]) } : undefined;
}

export class ChecksumMismatchError extends Error {
  constructor(
    readonly want: string,
    readonly got: string,
  ) {
    super(`snapshot content digest ${got} differs from the recorded ${want}`);
    this.name = "ChecksumMismatchError";
  }
}

/** Counts and hashes what flows through. */
function hashing(): Transform & { digest(): string; bytes: number } {
  const hash = createHash("sha256");
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      (t as unknown as { bytes: number }).bytes += chunk.length;
      cb(null, chunk);
    },
  }) as Transform & { digest(): string; bytes: number };
  t.bytes = 0;
  t.digest = () => `sha256:${hash.digest("hex")}`;
  return t;
}

export class DockerSnapshots {
  constructor(
    private readonly docker: Docker,
    private readonly image: string,
    private readonly owner: string,
  ) {}

  /** Copy `sourceVolume` into the snapshot's volume; idempotent (a complete copy is read back). */
  async take(s: SnapshotRef, sourceVolume: string): Promise<SnapshotCopy> {
    const handle = snapshotVolumeName(s);
    await ignoreConflict(
      this.docker.createVolume({ Name: handle, Labels: snapshotLabels(s, this.owner) }),
    );
    return this.withHelper(
      `${handle}.take`,
      [
        { Type: "volume", Source: sourceVolume, Target: "/ws", ReadOnly: true },
        { Type: "volume", Source: handle, Target: "/snap" },
      ],
      async (helper) => {
        const done = await this.readSum(helper);
        if (done) return { handle, ...done };
        const dir = await mkdtemp(join(tmpdir(), "sbx-snapshot-"));
        try {
          const file = join(dir, SNAPSHOT_TAR);
          const h = hashing();
          const source = (await helper.getArchive({ path: "/ws/." })) as unknown as Readable;
          await pipeline(source, h, createWriteStream(file));
          const checksum = h.digest();
          const sizeBytes = (await stat(file)).size;
          const outer = pack();
          const put = helper.putArchive(outer as unknown as Readable, { path: "/snap" });
          await new Promise<void>((resolve, reject) => {
            const entry = outer.entry(
              { name: SNAPSHOT_TAR, size: sizeBytes, mode: 0o400, uid: 0, gid: 0 },
              (err) => (err ? reject(err) : resolve()),
            );
            createReadStream(file).on("error", reject).pipe(entry);
          });
          // Last: its presence says the copy is complete.
          outer.entry(
            { name: SNAPSHOT_SUM, mode: 0o400, uid: 0, gid: 0 },
            `${checksum} ${sizeBytes}\n`,
          );
          outer.finalize();
          await put;
          return { handle, checksum, sizeBytes };
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    );
  }

  /**
   * Stream the snapshot's tar into `path` of container `target` (created, not
   * started; the new workspace mounted there), hashing it on the way.
   * Throws ChecksumMismatchError when the content is not what was recorded.
   */
  async restore(handle: string, checksum: string, target: string, path: string): Promise<number> {
    return this.withHelper(
      `${handle}.restore.${target.slice(0, 12)}`,
      [{ Type: "volume", Source: handle, Target: "/snap", ReadOnly: true }],
      async (helper) => {
        const outer = (await helper.getArchive({
          path: `/snap/${SNAPSHOT_TAR}`,
        })) as unknown as Readable;
        const h = hashing();
        const body = new PassThrough();
        const put = this.docker.getContainer(target).putArchive(body, { path });
        const ex = extract();
        let found = false;
        ex.on("entry", (header, stream, next) => {
          if (header.name.replace(/^\.?\//, "") !== SNAPSHOT_TAR || found) {
            stream.resume();
            stream.on("end", next);
            return;
          }
          found = true;
          stream.pipe(h).pipe(body);
          stream.on("end", next);
        });
        await Promise.all([pipeline(outer, ex), put]);
        if (!found) throw new Error(`snapshot volume ${handle} has no ${SNAPSHOT_TAR}`);
        const got = h.digest();
        if (got !== checksum) throw new ChecksumMismatchError(checksum, got);
        return h.bytes;
      },
    );
  }

  async remove(s: SnapshotRef): Promise<void> {
    await ignoreGoneOrConflict(this.docker.getVolume(snapshotVolumeName(s)).remove());
  }

  private async readSum(helper: Docker.Container) {
    let outer: Readable;
    try {
      outer = (await helper.getArchive({ path: `/snap/${SNAPSHOT_SUM}` })) as unknown as Readable;
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
    let text = "";
    const ex = extract();
    ex.on("entry", (_h, stream, next) => {
      stream.on("data", (c: unknown) => {
        text += (c as Buffer).toString("utf8");
      });
      stream.on("end", next);
    });
    await pipeline(outer, ex);
    return parseSumFile(text);
  }

  /** A created, never started container with `mounts`, removed afterwards. */
  private async withHelper<T>(
    name: string,
    mounts: Docker.MountSettings[],
    use: (helper: Docker.Container) => Promise<T>,
  ): Promise<T> {
    // One left by an interrupted attempt is removed first.
    await removeHelper(this.docker.getContainer(name));
    const helper = await this.docker.createContainer({
      name,
      Image: this.image,
      Entrypoint: [EGRESS_EXECUTABLE],
      Labels: {
        [DockerLabels.managedBy]: MANAGED_BY,
        [DockerLabels.owner]: this.owner,
        [DockerLabels.role]: "snapshot-helper",
      },
      NetworkDisabled: true,
      HostConfig: { Mounts: mounts, NetworkMode: "none" },
    });
    try {
      return await use(helper);
    } finally {
      await removeHelper(helper);
    }
  }
}

/**
 * Removes a helper container and returns once it is gone. The daemon answers
 * 409 while another request still holds the container (an archive upload of a
 * controller killed mid-copy, say) or a removal is in progress; the helper must
 * be gone before the snapshot is recorded Ready, so 409 is waited out, bounded.
 */
export async function removeHelper(
  c: Docker.Container,
  attempts = 50,
  delayMs = 200,
): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await c.remove({ force: true });
      return;
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) return;
      if (code !== 409 || i + 1 >= attempts) throw err;
    }
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

async function ignoreConflict(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (statusCode(err) !== 409) throw err;
  }
}
