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
  /** Run the bundle (dist/cli/main.js, `npm run build`) as the image does, not the sources through tsx. */
  bundle?: boolean;
  /** More options for node itself (e.g. --cpu-prof). */
  nodeOptions?: string[];
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}): Promise<GatewayProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const p = startProcess(
    o.name,
    process.execPath,
    [
      ...(o.nodeOptions ?? []),
      ...(o.bundle
        ? [join(REPO_ROOT, "dist/cli/main.js")]
        : ["--import", "tsx", join(REPO_ROOT, "src/cli/main.ts")]),
      "gateway",
      `--kubeconfig=${o.kubeconfig}`,
      `--listen=127.0.0.1:${port}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      `--keys-dir=${o.keysDir}`,
      ...(o.dockerHost ? [`--docker-host=${o.dockerHost}`] : []),
      ...(o.tls ? [`--tls-cert=${o.tls.cert}`, `--tls-key=${o.tls.key}`] : []),
      ...(o.extra ?? []),
    ],
    o.logDir,
    { ...process.env, NODE_OPTIONS: "" },
  );
  const url = `${o.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  await waitForHttpOk(p.child, `${metricsUrl}/readyz`, 60_000, () => tail(p.logPath));
  return { ...p, url, metricsUrl };
}
