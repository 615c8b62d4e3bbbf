// The gateway as a user runs it: `sandbox-operator gateway` as a child process
// (its own RSS and CPU, killable), against the test control plane.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyFiles, SIGNING_KEY_FILE } from "../../src/gateway/keys.js";
import { REPO_ROOT } from "./paths.js";
import { freePort, type Started, startProcess, tail, waitForHttpOk } from "./processes.js";

export interface GatewayProcess extends Started {
  url: string;
  metricsUrl: string;
}

/** A key directory as the key Secret's volume would hold it. */
export function keyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "gw-keys-"));
  writeFileSync(join(dir, SIGNING_KEY_FILE), generateKeyFiles().privatePem, { mode: 0o600 });
  return dir;
}

export async function startGatewayProcess(o: {
  name: string;
  kubeconfig: string;
  keysDir: string;
  dockerHost?: string;
  logDir: string;
  extra?: string[];
}): Promise<GatewayProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const p = startProcess(
    o.name,
    process.execPath,
    [
      "--import",
      "tsx",
      join(REPO_ROOT, "src/cli/main.ts"),
      "gateway",
      `--kubeconfig=${o.kubeconfig}`,
      `--listen=127.0.0.1:${port}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      `--keys-dir=${o.keysDir}`,
      ...(o.dockerHost ? [`--docker-host=${o.dockerHost}`] : []),
      ...(o.extra ?? []),
    ],
    o.logDir,
    { ...process.env, NODE_OPTIONS: "" },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForHttpOk(p.child, `${url}/readyz`, 60_000, () => tail(p.logPath));
  return { ...p, url, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}
