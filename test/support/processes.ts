// Child processes of the test harness: started in their own process group with
// output to a log file, and killed on any exit path of the test run (normal end,
// failure, Ctrl-C), so no etcd or apiserver outlives the tests.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const live = new Set<ChildProcess>();
let hooksInstalled = false;
let callerHandlesSignals = false;

/**
 * For programs that stop gracefully on Ctrl-C themselves (hack/run-local.ts):
 * the harness then kills its children on exit only, not at the signal.
 */
export function leaveSignalsToCaller(): void {
  callerHandlesSignals = true;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", () => {
    for (const child of live) killGroup(child, "SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => {
      if (callerHandlesSignals) return;
      for (const child of live) killGroup(child, "SIGKILL");
      process.exit(130);
    });
  }
}

export interface Started {
  name: string;
  child: ChildProcess;
  logPath: string;
  stop(): Promise<void>;
}

/** Start `bin args` with output appended to `<logDir>/<name>.log`. */
export function startProcess(
  name: string,
  bin: string,
  args: string[],
  logDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Started {
  installExitHooks();
  const logPath = join(logDir, `${name}.log`);
  const log = createWriteStream(logPath, { flags: "a" });
  const child = spawn(bin, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  live.add(child);
  child.once("exit", () => live.delete(child));
  return {
    name,
    child,
    logPath,
    stop: () => stopProcess(child),
  };
}

/** SIGTERM, then SIGKILL after a grace period. */
export async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  killGroup(child, "SIGTERM");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Wait until `url` answers 2xx (a started server's /readyz, say). Throws when the
 * child exits first or `timeoutMs` passes; `context` (a log tail, say) is added
 * to the error.
 */
export async function waitForHttpOk(
  child: ChildProcess,
  url: string,
  timeoutMs: number,
  context: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`process exited with ${child.exitCode} before ${url} answered\n${context()}`);
    }
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`${url} not ready after ${timeoutMs} ms\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A free TCP port on loopback (the kernel picks; we release it right away). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

/** Last lines of a log, for error messages that say why a component did not start. */
export function tail(path: string, lines = 30): string {
  if (!existsSync(path)) return "(no log)";
  return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Remove what earlier runs left behind when they were killed too hard to clean
 * up (SIGKILL of the test runner): their process groups, then their directories.
 */
export function reapStale(baseDir: string): void {
  if (!existsSync(baseDir)) return;
  for (const entry of readdirSync(baseDir)) {
    const dir = join(baseDir, entry);
    const pidFile = join(dir, "pids");
    if (!existsSync(pidFile)) continue;
    const owner = Number(entry.split("-")[0]);
    if (owner && isAlive(owner)) continue; // a concurrent run
    for (const pid of readFileSync(pidFile, "utf8").split("\n").filter(Boolean).map(Number)) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
