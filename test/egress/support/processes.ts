// Run commands for the netns tests: bounded in time, output captured, and
// never throwing on a non-zero exit (a refused connection is an expected outcome).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { REPO_ROOT } from "../../support/paths.js";

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(
  argv: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 20_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", (err) => resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
  });
}

/** Like run, but a non-zero exit is a test-setup failure. */
export async function must(
  argv: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function onPath(binary: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, binary)));
}

/**
 * The netns tests need root and a few tools. Fail (never skip) with a message
 * that says what to install.
 */
export function requireRootAndTools(tools: string[]): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      "the egress netns tests need root (network namespaces, iptables); run them as root",
    );
  }
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length > 0) {
    throw new Error(
      `missing tools for the egress netns tests: ${missing.join(", ")} (Debian: apt-get install iproute2 iptables util-linux curl dnsutils openssl)`,
    );
  }
}

/** argv that runs a TypeScript entry point of this repo with node + tsx. */
export function tsNode(script: string, arg: unknown): string[] {
  return [process.execPath, "--import", "tsx", join(REPO_ROOT, script), JSON.stringify(arg)];
}

/** A long-running child whose stdout is JSON lines (servers, the sidecar). */
export interface JsonLinesProcess {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr(): string;
  waitFor(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnJsonLines(argv: string[]): JsonLinesProcess {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  let partial = "";
  const waiters = new Set<() => void>();
  child.stdout!.on("data", (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split("\n");
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p));
      } catch {
        lines.push({ raw: p });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.once("exit", () => {
    for (const w of waiters) w();
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    waitFor(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(
              new Error(
                `${argv.join(" ")} exited (${child.exitCode ?? child.signalCode}): ${stderr.slice(-2000)}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `timed out waiting for output of ${argv.slice(0, 6).join(" ")}; stderr: ${stderr.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}
