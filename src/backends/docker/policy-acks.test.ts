// The acknowledgement files on a real file system, followed by a real inotify
// watch (the bind mount that carries a sidecar's writes to these files is the
// docker suite's business: test/docker/policy-ack.test.ts).
import { mkdtempSync, statSync } from "node:fs";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { policyFileDigest } from "../../egress/policy-ack.js";
import { silentLogger } from "../../observability/logger.js";
import { PolicyAcks } from "./policy-acks.js";

const A = policyFileDigest("a\n");
const B = policyFileDigest("b\n");
const UID = "11111111-2222-3333-4444-555555555555";

let root: string;
let acks: PolicyAcks;
let enqueued: string[];

beforeEach(() => {
  root = join(mkdtempSync(join(tmpdir(), "policy-acks-")), "applied");
  enqueued = [];
  acks = new PolicyAcks({ root, enqueue: (k) => enqueued.push(k), log: silentLogger() });
});
afterEach(async () => {
  acks.close();
  await rm(join(root, ".."), { recursive: true, force: true });
});

/** As the sidecar writes it: in place over the old record, then cut to length. */
async function sidecarWrites(uid: string, sha256: string, applied = true): Promise<void> {
  const text = `${JSON.stringify({ sha256, applied, ...(applied ? {} : { error: "bad" }) })}\n`;
  const f = await open(join(root, uid), "r+");
  try {
    await f.write(text, 0);
    await f.truncate(Buffer.byteLength(text));
  } finally {
    await f.close();
  }
}

const until = async (ok: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe("PolicyAcks", () => {
  it("prepares the file in a directory no other host user can enter; fresh empties it", async () => {
    await acks.prepare(UID, true);
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(statSync(acks.fileOf(UID)).mode & 0o777).toBe(0o622);
    await sidecarWrites(UID, A);
    await acks.prepare(UID, false); // a restart: the record stays
    expect(await acks.read(UID)).toEqual({ sha256: A, applied: true });
    await acks.prepare(UID, true); // a new sidecar: no earlier record stands for it
    expect(await readFile(acks.fileOf(UID), "utf8")).toBe("");
    expect(await acks.read(UID)).toBeUndefined();
  });

  it("wakes a waiting reconcile when the sidecar acknowledges, without polling", async () => {
    await acks.prepare(UID, true);
    acks.track(UID, "ns/a");
    await sidecarWrites(UID, A);
    const started = Date.now();
    const waiting = acks.waitFor(UID, B, 5000);
    setTimeout(() => void sidecarWrites(UID, B), 50);
    expect(await waiting).toEqual({ sha256: B, applied: true });
    expect(Date.now() - started).toBeLessThan(2000);
    // A reconcile took it: nothing enqueued besides.
    expect(enqueued).toEqual([]);
  });

  it("returns at once when the file already names the digest, and what it holds after the wait otherwise", async () => {
    await acks.prepare(UID, true);
    await sidecarWrites(UID, A);
    expect(await acks.waitFor(UID, A, 5000)).toEqual({ sha256: A, applied: true });
    const started = Date.now();
    expect(await acks.waitFor(UID, B, 100)).toEqual({ sha256: A, applied: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });

  it("a refusal of the digest waited for ends the wait too", async () => {
    await acks.prepare(UID, true);
    const waiting = acks.waitFor(UID, B, 5000);
    setTimeout(() => void sidecarWrites(UID, B, false), 20);
    expect(await waiting).toEqual({ sha256: B, applied: false, error: "bad" });
  });

  it("enqueues a sandbox left pending once the file names its digest, and only then", async () => {
    await acks.prepare(UID, true);
    acks.track(UID, "ns/a");
    expect(acks.leavePending(UID, B)).toBe(false);
    expect(acks.leavePending(UID, B)).toBe(true); // a second reconcile waited in vain too
    await sidecarWrites(UID, A); // an older policy: not what it waits for
    await new Promise((r) => setTimeout(r, 200));
    expect(enqueued).toEqual([]);
    await sidecarWrites(UID, B);
    await until(() => enqueued.length > 0);
    expect(enqueued).toEqual(["ns/a"]);
    // Settled: a rewrite of the same record enqueues nothing more.
    await sidecarWrites(UID, B);
    await new Promise((r) => setTimeout(r, 200));
    expect(enqueued).toEqual(["ns/a"]);
  });

  it("a sandbox settled by its reconcile is not enqueued", async () => {
    await acks.prepare(UID, true);
    acks.track(UID, "ns/a");
    acks.leavePending(UID, B);
    acks.settle(UID);
    await sidecarWrites(UID, B);
    await new Promise((r) => setTimeout(r, 200));
    expect(enqueued).toEqual([]);
  });

  it("remembers a bounded number of sandboxes, the oldest forgotten first", async () => {
    acks = new PolicyAcks({ root, enqueue: (k) => enqueued.push(k), log: silentLogger(), max: 2 });
    const uids = ["u1", "u2", "u3"];
    for (const u of uids) {
      await acks.prepare(u, true);
      acks.track(u, `ns/${u}`);
      acks.leavePending(u, B);
    }
    for (const u of uids) await sidecarWrites(u, B);
    await until(() => enqueued.length >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(enqueued.sort()).toEqual(["ns/u2", "ns/u3"]);
  });

  it("removes the file and forgets the sandbox", async () => {
    await acks.prepare(UID, true);
    acks.track(UID, "ns/a");
    acks.leavePending(UID, B);
    await acks.remove(UID);
    expect(await acks.read(UID)).toBeUndefined();
    await writeFile(join(root, UID), `${JSON.stringify({ sha256: B, applied: true })}\n`);
    await new Promise((r) => setTimeout(r, 200));
    expect(enqueued).toEqual([]);
  });
});
