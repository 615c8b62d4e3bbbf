// The commands of `kubectl sandbox` other than cp.
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { constants } from "node:os";
import { parse as parseYaml } from "yaml";
import type { SandboxSpecInput } from "../../../../src/api/sandbox-spec.js";
import type { ExecHandle } from "../../../../src/dataplane/client.js";
import type { ClaimOptions } from "../claim.js";
import { Sandbox } from "../sandbox.js";
import { parse, UsageError } from "./args.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function intFlag(v: unknown, flag: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag}: "${v}" is not an integer ≥ ${min}`);
  return n;
}

function envFlag(list: unknown): Record<string, string> | undefined {
  if (!Array.isArray(list) || !list.length) return undefined;
  const env: Record<string, string> = {};
  for (const kv of list as string[]) {
    const at = kv.indexOf("=");
    if (at < 1) throw new UsageError(`--env: "${kv}" is not NAME=VALUE`);
    env[kv.slice(0, at)] = kv.slice(at + 1);
  }
  return env;
}

function oneName(positionals: string[], what = "NAME"): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length
        ? `expected one ${what}, got ${positionals.length}`
        : `${what} is required`,
    );
  }
  return positionals[0]!;
}

/** A process's exit as a shell reports it: the code, or 128 + the signal's number. */
export function exitCodeOf(status: {
  exitCode: number | null;
  signal?: string | undefined;
}): number {
  if (status.exitCode !== null) return status.exitCode;
  const n = constants.signals[status.signal as keyof typeof constants.signals];
  return 128 + (n ?? 9);
}

/** The command's exit code once it exited and its output was all passed on. */
async function drainedExitCode(handle: ExecHandle): Promise<number> {
  const status = await handle.exit;
  const ended = (s: NodeJS.ReadableStream & { readableEnded: boolean }) =>
    new Promise((r) => (s.readableEnded ? r(0) : s.once("end", r)));
  await Promise.all([ended(handle.stdout), ended(handle.stderr)]);
  return exitCodeOf(status);
}

/** Flags a claim takes, shared by `claim` and `run --template`. */
const CLAIM_FLAGS = {
  template: { type: "string" },
  pool: { type: "string" },
  allow: { type: "string", multiple: true },
  ttl: { type: "string" },
  name: { type: "string" },
  timeout: { type: "string" },
} as const;

/** Claim options from the flags; absent --allow keeps the template's egress policy. */
function claimOptionsOf(v: Record<string, unknown>, client: ClaimOptions): ClaimOptions {
  const allow = (v.allow as string[] | undefined) ?? [];
  const ttl = intFlag(v.ttl, "--ttl");
  return {
    ...client,
    ...(typeof v.pool === "string" ? { pool: v.pool } : {}),
    ...(typeof v.name === "string" ? { name: v.name } : {}),
    ...(ttl ? { ttlSeconds: ttl } : {}),
    ...(allow.length
      ? {
          egress: {
            defaultAction: "deny" as const,
            rules: allow.map((target) => ({ action: "allow" as const, target })),
          },
        }
      : {}),
    waitUntilReady: (intFlag(v.timeout, "--timeout") ?? 300) * 1000,
  };
}

/** "sandbox S (Warm from pool P, ready in N ms)": what a person wants to know of a claim. */
function describeClaim(sandbox: Sandbox): string {
  const c = sandbox.claim;
  const from =
    c?.source === "Cold" ? `Cold: ${c.coldReason ?? "cold start"}` : `${c?.source ?? "?"}`;
  const pool = c?.pool ? ` from pool ${c.pool}` : "";
  const ms = c?.readyMilliseconds !== undefined ? `, ready in ${c.readyMilliseconds} ms` : "";
  return `claim ${c?.name}: sandbox ${sandbox.name} (${from}${pool}${ms})`;
}

export async function claim(args: string[]): Promise<number> {
  const p = parse("claim", args, {
    ...CLAIM_FLAGS,
    env: { type: "string", short: "e", multiple: true },
  });
  if (p.positionals.length) throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
  if (typeof p.values.template !== "string") throw new UsageError("--template is required");
  const env = envFlag(p.values.env);
  const sandbox = await Sandbox.claim(p.values.template, {
    ...claimOptionsOf(p.values, p.client),
    ...(env ? { env } : {}),
  });
  sandbox.close();
  process.stderr.write(`${describeClaim(sandbox)}\n`);
  process.stdout.write(`${sandbox.name}\n`);
  return 0;
}

/** `run --template`: the template's workload runs already; COMMAND runs in it through the agent. */
async function runClaimed(p: ReturnType<typeof parse>): Promise<number> {
  const v = p.values;
  for (const flag of ["image", "file", "port", "backend"])
    if (v[flag] !== undefined)
      throw new UsageError(`--${flag} cannot be used with --template (the template says it)`);
  if (!p.rest.length)
    throw new UsageError("COMMAND is required with --template (after --): it runs in the sandbox");
  const env = envFlag(v.env);
  const sandbox = await Sandbox.claim(v.template as string, claimOptionsOf(v, p.client));
  const cleanup = async () => {
    if (!v.keep) await sandbox.delete();
    else process.stderr.write(`${describeClaim(sandbox)} kept\n`);
  };
  const onInt = () => {
    cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onInt);
  try {
    const handle = await sandbox.execStream(p.rest, env ? { env } : {});
    handle.stdout.pipe(process.stdout, { end: false });
    handle.stderr.pipe(process.stderr, { end: false });
    return await drainedExitCode(handle);
  } finally {
    process.off("SIGINT", onInt);
    await cleanup();
  }
}

export async function run(args: string[]): Promise<number> {
  const p = parse("run", args, {
    template: { type: "string" },
    pool: { type: "string" },
    image: { type: "string" },
    file: { type: "string", short: "f" },
    name: { type: "string" },
    env: { type: "string", short: "e", multiple: true },
    port: { type: "string", short: "p", multiple: true },
    ttl: { type: "string" },
    backend: { type: "string" },
    allow: { type: "string", multiple: true },
    keep: { type: "boolean" },
    timeout: { type: "string" },
  });
  if (p.positionals.length)
    throw new UsageError(`unexpected argument "${p.positionals[0]}" (put the command after --)`);
  if (typeof p.values.template === "string") return runClaimed(p);
  if (p.values.pool !== undefined) throw new UsageError("--pool needs --template");
  const v = p.values;
  let spec: Record<string, unknown> = {};
  if (typeof v.file === "string") {
    let doc: Record<string, unknown>;
    try {
      doc = parseYaml(readFileSync(v.file, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--file: ${(err as Error).message}`);
    }
    spec = (doc?.kind === "Sandbox" ? doc.spec : doc) as Record<string, unknown>;
    if (!spec || typeof spec !== "object") throw new UsageError("--file: no sandbox spec in it");
  }
  if (typeof v.image === "string") spec.image = v.image;
  if (!spec.image) throw new UsageError("--image (or a --file with spec.image) is required");
  if (p.rest.length) spec.command = p.rest;
  const env = envFlag(v.env);
  if (env) spec.env = Object.entries(env).map(([name, value]) => ({ name, value }));
  const ports = ((v.port as string[] | undefined) ?? []).map((x) => intFlag(x, "--port")!);
  if (ports.length) spec.ports = ports.map((port) => ({ name: `p${port}`, port }));
  const ttl = intFlag(v.ttl, "--ttl");
  if (ttl) spec.lifetime = { ttlSeconds: ttl };
  if (typeof v.backend === "string") {
    if (!["pod", "docker"].includes(v.backend))
      throw new UsageError(`--backend: "${v.backend}" is not pod or docker`);
    spec.backend = v.backend;
  }
  const allow = (v.allow as string[] | undefined) ?? [];
  if (allow.length) {
    spec.network = {
      egress: {
        defaultAction: "deny",
        rules: allow.map((target) => ({ action: "allow", target })),
      },
    };
  }
  const timeoutMs = (intFlag(v.timeout, "--timeout") ?? 300) * 1000;

  const sandbox = await Sandbox.create(spec as SandboxSpecInput, {
    ...p.client,
    ...(typeof v.name === "string" ? { name: v.name } : {}),
    waitUntilReady: false,
  });
  const cleanup = async () => {
    if (!v.keep) await sandbox.delete();
    else process.stderr.write(`sandbox ${sandbox.name} kept\n`);
  };
  process.once("SIGINT", () => {
    cleanup().finally(() => process.exit(130));
  });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await sandbox.refresh();
      const phase = r.status?.phase;
      if (phase === "Running" || phase === "Succeeded" || phase === "Failed") break;
      if (phase === "Expired" || Date.now() > deadline) {
        process.stderr.write(
          `error: sandbox ${sandbox.name} did not start (${phase ?? "Pending"}${r.status?.message ? `: ${r.status.message}` : ""})\n`,
        );
        return 1;
      }
      await sleep(200);
    }
    const logs = await sandbox.logs({ follow: true });
    logs.stdout.pipe(process.stdout, { end: false });
    logs.stderr.pipe(process.stderr, { end: false });
    await Promise.all([
      new Promise((r) => logs.stdout.once("end", r)),
      new Promise((r) => logs.stderr.once("end", r)),
    ]);
    for (let i = 0; ; i++) {
      const r = await sandbox.refresh();
      const phase = r.status?.phase;
      if (phase === "Succeeded" || phase === "Failed")
        return r.status?.exitCode ?? (phase === "Succeeded" ? 0 : 1);
      if (i > 150) {
        process.stderr.write(`error: sandbox ${sandbox.name} is ${phase} after its output ended\n`);
        return 1;
      }
      await sleep(200);
    }
  } finally {
    await cleanup();
  }
}

export async function exec(args: string[]): Promise<number> {
  const p = parse("exec", args, {
    stdin: { type: "boolean", short: "i" },
    tty: { type: "boolean", short: "t" },
    env: { type: "string", short: "e", multiple: true },
    workdir: { type: "string", short: "w" },
    timeout: { type: "string" },
  });
  const name = oneName(p.positionals);
  if (!p.rest.length) throw new UsageError("COMMAND is required (after --)");
  const env = envFlag(p.values.env);
  const timeout = intFlag(p.values.timeout, "--timeout");
  const tty = !!p.values.tty;
  const stdin = !!p.values.stdin;
  const sandbox = await Sandbox.get(name, p.client);
  const size = () => ({ cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 });
  const handle = await sandbox.execStream(p.rest, {
    ...(env ? { env } : {}),
    ...(typeof p.values.workdir === "string" ? { cwd: p.values.workdir } : {}),
    ...(timeout ? { timeoutMs: timeout * 1000 } : {}),
    ...(tty ? { tty: size() } : {}),
    ...(stdin ? { stdin: process.stdin } : {}),
  });
  const rawMode = tty && stdin && process.stdin.isTTY;
  if (rawMode) process.stdin.setRawMode(true);
  const onResize = () => handle.resize(size());
  if (tty) process.stdout.on("resize", onResize);
  handle.stdout.pipe(process.stdout, { end: false });
  handle.stderr.pipe(process.stderr, { end: false });
  try {
    return await drainedExitCode(handle);
  } finally {
    if (rawMode) process.stdin.setRawMode(false);
    process.stdout.off("resize", onResize);
    sandbox.close();
  }
}

/** "10m", "30s", "2h" ago, or an RFC 3339 time, as Unix seconds. */
export function sinceOf(v: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (m)
    return Math.floor(Date.now() / 1000) - Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s"];
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new UsageError(`--since: "${v}" is neither a duration (10m) nor an RFC 3339 time`);
  return Math.floor(t / 1000);
}

export async function logs(args: string[]): Promise<number> {
  const p = parse("logs", args, {
    follow: { type: "boolean", short: "f" },
    since: { type: "string" },
    tail: { type: "string" },
  });
  const name = oneName(p.positionals);
  const since = typeof p.values.since === "string" ? sinceOf(p.values.since) : undefined;
  const tail = intFlag(p.values.tail, "--tail", 0);
  const sandbox = await Sandbox.get(name, p.client);
  const s = await sandbox.logs({
    follow: !!p.values.follow,
    ...(since !== undefined ? { since } : {}),
    ...(tail !== undefined ? { tail } : {}),
  });
  s.stdout.pipe(process.stdout, { end: false });
  s.stderr.pipe(process.stderr, { end: false });
  await Promise.all([
    new Promise((r) => s.stdout.once("end", r)),
    new Promise((r) => s.stderr.once("end", r)),
  ]);
  sandbox.close();
  return 0;
}

export async function portForward(args: string[]): Promise<number> {
  const p = parse("port-forward", args, {});
  if (p.positionals.length !== 2) throw new UsageError("expected NAME and [LOCAL_PORT:]PORT");
  const [name, spec] = p.positionals as [string, string];
  const [a, b] = spec.includes(":") ? spec.split(":") : [spec, spec];
  const local = intFlag(a, "LOCAL_PORT", 0)!;
  const remote = intFlag(b, "PORT")!;
  const sandbox = await Sandbox.get(name, p.client);
  const server = createServer((client) => {
    sandbox.connect(remote).then(
      (upstream) => {
        client.pipe(upstream).pipe(client);
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
      },
      (err) => {
        process.stderr.write(`error: ${(err as Error).message}\n`);
        client.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(local, "127.0.0.1", resolve);
  });
  const bound = (server.address() as { port: number }).port;
  process.stdout.write(`Forwarding from 127.0.0.1:${bound} -> ${remote}\n`);
  await new Promise((r) => process.once("SIGINT", r));
  server.close();
  return 0;
}

function age(iso: string | undefined): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export async function ls(args: string[]): Promise<number> {
  const p = parse("ls", args, { selector: { type: "string", short: "l" } });
  if (p.positionals.length) throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
  const all = await Sandbox.list({
    ...p.client,
    ...(typeof p.values.selector === "string" ? { labelSelector: p.values.selector } : {}),
  });
  const rows = [["NAME", "PHASE", "BACKEND", "READY", "EXPIRES", "AGE"]];
  for (const s of all) {
    const st = s.status;
    const ready = st?.conditions?.find((c) => c.type === "Ready")?.status ?? "Unknown";
    rows.push([
      s.name,
      st?.phase ?? "Pending",
      st?.backend ?? "-",
      ready,
      st?.expiresAt ?? "-",
      age(s.createdAt),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("   ")
        .trimEnd()}\n`,
    );
  return 0;
}

export async function rm(args: string[]): Promise<number> {
  const p = parse("rm", args, {});
  if (!p.positionals.length) throw new UsageError("NAME is required");
  let code = 0;
  for (const name of p.positionals) {
    try {
      await (await Sandbox.get(name, p.client)).delete();
      process.stdout.write(`${name}\n`);
    } catch (err) {
      process.stderr.write(`error: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

export async function renew(args: string[]): Promise<number> {
  const p = parse("renew", args, { ttl: { type: "string" } });
  const name = oneName(p.positionals);
  const ttl = intFlag(p.values.ttl, "--ttl");
  if (!ttl) throw new UsageError("--ttl SECONDS is required");
  const at = await (await Sandbox.get(name, p.client)).renew(ttl);
  process.stdout.write(`${name} expires at ${at.toISOString()}\n`);
  return 0;
}

export async function suspend(args: string[]): Promise<number> {
  const p = parse("suspend", args, {});
  if (!p.positionals.length) throw new UsageError("NAME is required");
  let code = 0;
  for (const name of p.positionals) {
    try {
      await (await Sandbox.get(name, p.client)).suspend();
      process.stdout.write(`${name} suspended\n`);
    } catch (err) {
      process.stderr.write(`error: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

export async function resume(args: string[]): Promise<number> {
  const p = parse("resume", args, { timeout: { type: "string" } });
  if (!p.positionals.length) throw new UsageError("NAME is required");
  const timeout = p.values.timeout === undefined ? 120 : intFlag(p.values.timeout, "--timeout", 0);
  let code = 0;
  for (const name of p.positionals) {
    try {
      const sandbox = await Sandbox.get(name, p.client);
      await sandbox.resume({ wait: !!timeout, timeoutMs: (timeout ?? 0) * 1000 });
      sandbox.close();
      process.stdout.write(`${name} ${timeout ? "running" : "resuming"}\n`);
    } catch (err) {
      process.stderr.write(`error: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}
