// The controller as users run it (`sandbox-operator controller`), from source
// through tsx, in a process of its own: a test can pause it (SIGSTOP), resume
// it and read its /readyz, which an in-process controller cannot offer.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./paths.js";
import { freePort, type Started, startProcess, tail, waitForHttpOk } from "./processes.js";

export interface ControllerProcess {
  proc: Started;
  /** http://127.0.0.1:<port>/readyz */
  readyz: string;
  /** SIGSTOP / SIGCONT the process: a long GC, a frozen VM, a debugger. */
  pause(): void;
  resume(): void;
  logs(): string;
  stop(): Promise<void>;
}

export async function startControllerProcess(opts: {
  kubeconfig: string;
  namespace: string;
  /** Prefix of the Lease holder identity (POD_NAME), to recognise this process in the Lease. */
  podName: string;
  flags?: string[];
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}): Promise<ControllerProcess> {
  const logDir = mkdtempSync(join(tmpdir(), "controller-process-"));
  const [metrics, health] = [await freePort(), await freePort()];
  const proc = startProcess(
    "controller",
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO_ROOT, "src/cli/main.ts"),
      "controller",
      `--kubeconfig=${opts.kubeconfig}`,
      `--namespaces=${opts.namespace}`,
      `--leader-election-namespace=${opts.namespace}`,
      `--metrics-bind-address=127.0.0.1:${metrics}`,
      `--health-probe-bind-address=127.0.0.1:${health}`,
      "--log-level=info",
      ...(opts.flags ?? []),
    ],
    logDir,
    { ...process.env, POD_NAME: opts.podName },
  );
  const readyz = `http://127.0.0.1:${health}/readyz`;
  const logs = () => tail(proc.logPath, 40);
  const signal = (s: NodeJS.Signals) => process.kill(-proc.child.pid!, s);
  const handle: ControllerProcess = {
    proc,
    readyz,
    pause: () => signal("SIGSTOP"),
    resume: () => signal("SIGCONT"),
    logs,
    stop: async () => {
      // A stopped process cannot handle SIGTERM.
      if (proc.child.exitCode === null) signal("SIGCONT");
      await proc.stop();
    },
  };
  if (opts.waitReady ?? true) {
    try {
      await waitForHttpOk(proc.child, readyz, 30_000, logs);
    } catch (err) {
      await handle.stop();
      throw err;
    }
  }
  return handle;
}
