// Docker workspace snapshots against the real dockerd: a tar of a workspace
// volume into a snapshot volume with its SHA-256, restored into a new
// workspace byte for byte (every file's digest, modes and owners compared);
// taking it again is idempotent; a tampered copy is refused on restore.
import { randomBytes } from "node:crypto";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ChecksumMismatchError,
  DockerSnapshots,
  snapshotVolumeName,
} from "../../src/backends/docker/snapshots.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../support/docker.js";

const OWNER = `test-snap-${process.pid}`;
const tag = randomBytes(3).toString("hex");
const SOURCE = `sbx-test-src-${tag}`;
const TARGET = `sbx-test-dst-${tag}`;
const snap = { namespace: "ns", name: `snap-${tag}`, uid: `${tag}0000-aaaa` };
let engine: Docker;
let snapshots: DockerSnapshots;

const run = async (volume: string, script: string, user = "1000:1000") => {
  const r = await docker(
    [
      "run",
      "--rm",
      "--network",
      "none",
      "-u",
      user,
      "-v",
      `${volume}:/ws`,
      SANDBOX_IMAGE,
      "sh",
      "-c",
      script,
    ],
    120_000,
  );
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Every entry's type, mode, owner, size and (for files) digest: what "byte for byte" means here. */
const manifest = (volume: string) =>
  run(
    volume,
    'cd /ws && find . -mindepth 1 | sort | while read f; do if [ -f "$f" ] && [ ! -L "$f" ]; then h=$(sha256sum "$f" | cut -d\' \' -f1); else h=-; fi; echo "$f $(stat -c \'%F %a %u:%g %s\' "$f") $h"; done',
    "0:0",
  );

beforeAll(async () => {
  engine = await ensureDockerd();
  snapshots = new DockerSnapshots(engine, OPERATOR_IMAGE, OWNER);
  await engine.createVolume({ Name: SOURCE });
  await run(SOURCE, "chown 1000:1000 /ws", "0:0");
  await run(
    SOURCE,
    [
      "mkdir -p /ws/src/deep/er /ws/empty",
      "echo hello > /ws/src/hello.txt",
      "head -c 3000000 /dev/urandom > /ws/src/deep/er/random.bin",
      "printf 'x' > /ws/one-byte",
      "chmod 640 /ws/one-byte",
      "ln -s src/hello.txt /ws/link",
    ].join(" && "),
  );
}, 600_000);

afterAll(async () => {
  for (const v of [SOURCE, TARGET, snapshotVolumeName(snap)])
    await docker(["volume", "rm", "-f", v]);
  for (const c of await labelled("container", `sandboxing.dev/owner=${OWNER}`))
    await docker(["rm", "-f", c]);
});

describe("docker snapshots", () => {
  let copy: Awaited<ReturnType<DockerSnapshots["take"]>>;

  it("copies the workspace into a snapshot volume with its digest and size", async () => {
    const started = performance.now();
    copy = await snapshots.take(snap, SOURCE);
    console.log(`snapshot of ~3 MB in ${Math.round(performance.now() - started)} ms`);
    expect(copy.handle).toBe(snapshotVolumeName(snap));
    expect(copy.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(copy.sizeBytes).toBeGreaterThan(3_000_000);
    const labels = (await engine.getVolume(copy.handle).inspect()).Labels;
    expect(labels).toMatchObject({
      "sandboxing.dev/role": "snapshot",
      "sandboxing.dev/owner": OWNER,
    });
    // The helper container is gone.
    expect(await labelled("container", `sandboxing.dev/owner=${OWNER}`)).toEqual([]);
  });

  it("taking it again reads back the complete copy", async () => {
    await run(SOURCE, "echo changed-after > /ws/src/hello.txt");
    expect(await snapshots.take(snap, SOURCE)).toEqual(copy);
    await run(SOURCE, "echo hello > /ws/src/hello.txt");
  });

  it("restores byte for byte into a new workspace, the digest checked on the way", async () => {
    await engine.createVolume({ Name: TARGET });
    const target = await engine.createContainer({
      Image: SANDBOX_IMAGE,
      Cmd: ["true"],
      Labels: { "sandboxing.dev/owner": OWNER },
      HostConfig: { Mounts: [{ Type: "volume", Source: TARGET, Target: "/workspace" }] },
    });
    try {
      const bytes = await snapshots.restore(copy.handle, copy.checksum, target.id, "/workspace");
      expect(bytes).toBe(copy.sizeBytes);
    } finally {
      await target.remove({ force: true });
    }
    const [src, dst] = [await manifest(SOURCE), await manifest(TARGET)];
    expect(src.split("\n").length).toBeGreaterThanOrEqual(8);
    expect(dst).toBe(src);
    expect(await labelled("container", `sandboxing.dev/owner=${OWNER}`)).toEqual([]);
  });

  it("refuses a copy whose content no longer matches its digest", async () => {
    await run(
      snapshotVolumeName(snap),
      "printf 'tampered' | dd of=/ws/workspace.tar bs=1 seek=2000000 conv=notrunc 2>/dev/null",
      "0:0",
    );
    const target = await engine.createContainer({
      Image: SANDBOX_IMAGE,
      Cmd: ["true"],
      Labels: { "sandboxing.dev/owner": OWNER },
      HostConfig: { Mounts: [{ Type: "volume", Source: TARGET, Target: "/workspace" }] },
    });
    try {
      const err = await snapshots
        .restore(copy.handle, copy.checksum, target.id, "/workspace")
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChecksumMismatchError);
    } finally {
      await target.remove({ force: true });
    }
  });
});
