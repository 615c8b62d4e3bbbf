// The TypeScript data-plane client against the real agent binary, run as a
// local process (no container): every call goes over real HTTP and is
// validated by the protocol's zod schemas.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClient } from "../../src/dataplane/client.js";
import { NotFoundError, ProcessStartError, UnauthorizedError } from "../../src/dataplane/errors.js";
import { type LocalAgent, startLocalAgent } from "../support/agent.js";

let agent: LocalAgent;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dataplane-"));
  agent = await startLocalAgent(dir);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("data-plane client against the agent", () => {
  it("runs a command: output, exit code, env, cwd", async () => {
    const r = await agent.client.exec(["sh", "-c", 'echo "$A"; pwd; echo oops >&2; exit 7'], {
      env: { A: "a b" },
      cwd: "/tmp",
    });
    expect(r).toMatchObject({
      stdout: "a b\n/tmp\n",
      stderr: "oops\n",
      exitCode: 7,
      timedOut: false,
    });
    const killed = await agent.client.exec(["sleep", "10"], { timeoutMs: 100 });
    expect(killed).toMatchObject({ exitCode: null, signal: "SIGKILL", timedOut: true });
  });

  it("streams stdin (with backpressure) and output", async () => {
    const data = randomBytes(20 << 20);
    const seen: number[] = [];
    const r = await agent.client.exec(["sha256sum"], {
      stdin: Readable.from([data.subarray(0, 7 << 20), data.subarray(7 << 20)]),
      onStdout: (c) => seen.push(c.length),
    });
    expect(r.stdout).toBe(`${createHash("sha256").update(data).digest("hex")}  -\n`);
    expect(seen.length).toBeGreaterThan(0);
  });

  it("aborts: the AbortSignal kills the process", async () => {
    const ac = new AbortController();
    const p = agent.client.exec(["sleep", "30"], { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(p).rejects.toThrow(/abort/i);
    const left = await agent.client.listProcesses();
    await new Promise((r) => setTimeout(r, 200));
    expect((await agent.client.listProcesses()).filter((x) => x.argv[0] === "sleep")).toEqual([]);
    expect(left.length).toBeLessThanOrEqual(1);
  });

  it("streams with a handle: interactive stdin, signal", async () => {
    const h = agent.client.execStream(["sh", "-c", "read a; echo got:$a"], {
      stdin: Readable.from([]),
    });
    const out: string[] = [];
    const withStdin = agent.client.execStream(["sh", "-c", "read a; echo got:$a; exec sleep 30"], {
      tty: undefined,
      stdin: (async function* () {
        yield Buffer.from("hello\n");
        await new Promise((r) => setTimeout(r, 60_000));
      })(),
    });
    withStdin.stdout.on("data", (c: Buffer) => {
      out.push(c.toString());
      if (out.join("").includes("got:hello")) withStdin.kill("SIGTERM");
    });
    expect(await withStdin.exit).toMatchObject({ signal: "SIGTERM" });
    expect(out.join("")).toBe("got:hello\n");
    expect(await h.exit).toMatchObject({ exitCode: 0 });
    expect((await h.stdout.toArray()).join("")).toBe("got:\n");
  });

  it("typed errors", async () => {
    await expect(agent.client.exec(["definitely-not-a-program"])).rejects.toBeInstanceOf(
      ProcessStartError,
    );
    await expect(agent.client.stat(join(dir, "missing"))).rejects.toBeInstanceOf(NotFoundError);
    const wrong = new AgentClient({ ...agent.client.endpoint, token: "x".repeat(40) });
    await expect(wrong.version()).rejects.toBeInstanceOf(UnauthorizedError);
    wrong.close();
  });

  it("files: write, read ranges, list, stat, move, remove, tar round trip", async () => {
    const c = agent.client;
    const p = join(dir, "sub dir/ü ✓.bin");
    const data = randomBytes(3 << 20);
    expect(await c.writeFile(p, data, { parents: true, mode: 0o600 })).toMatchObject({
      bytes: data.length,
    });
    expect((await c.readFile(p)).equals(data)).toBe(true);
    expect((await c.readFile(p, { offset: 10, length: 5 })).equals(data.subarray(10, 15))).toBe(
      true,
    );
    expect(await c.stat(p)).toMatchObject({ type: "file", size: data.length, mode: 0o600 });
    expect((await c.list(join(dir, "sub dir"))).map((e) => e.name)).toEqual(["ü ✓.bin"]);
    const tar = await c.downloadTar(join(dir, "sub dir"));
    expect(await c.uploadTar(join(dir, "copy"), tar)).toMatchObject({ files: 1, dirs: 1 });
    expect((await c.readFile(join(dir, "copy/sub dir/ü ✓.bin"))).equals(data)).toBe(true);
    await c.move(join(dir, "copy"), join(dir, "moved"));
    expect(await c.exists(join(dir, "copy"))).toBe(false);
    await c.remove(join(dir, "moved"), { recursive: true });
    expect(await c.exists(join(dir, "moved"))).toBe(false);
  });

  it("background processes: start, output later, wait", async () => {
    const c = agent.client;
    const p = await c.startProcess(["sh", "-c", "echo one; sleep 0.2; echo two; exit 4"]);
    expect(p.running).toBe(true);
    const done = await c.waitProcess(p.id, 5000);
    expect(done).toMatchObject({ running: false, exit: { exitCode: 4 } });
    const out = await c.processOutput(p.id);
    expect(Buffer.from(out.stdout.data, "base64").toString()).toBe("one\ntwo\n");
    await c.killProcess(p.id);
    await expect(c.getProcess(p.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});
