// Resume-on-call benchmark (figures, not a timed test): how long a caller
// waits when its call meets a sandbox the operator suspended for idleness,
// on the docker backend (the real control plane, the operator, the agent,
// one gateway replica as a child process). Each round puts the sandboxes to
// sleep the way the operator does (spec.suspended + the IdleTimeout mark,
// then waits until the containers are gone) and times, from the caller's side:
//   - an SDK exec `true` (direct docker transport) on the suspended sandbox;
//   - an exec `true` through the gateway;
//   - an HTTP GET to a declared port through the gateway;
// beside the same calls on a running sandbox. Each sandbox has a workspace
// volume; the SDK's holds --size-mib of data (1 GiB by default), as in
// bench/workspace. Prints the figures, writes bench/results/idle.json with the
// machine, versions and load averages (the machine is shared).
//
//   flock /tmp/sbx-docker.lock npm run bench:idle [-- --rounds 10 --size-mib 1024]
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { idleSuspendPatch } from "../../src/idle/wake.js";
import { buildAgent } from "../../test/support/agent.js";
import { startControlPlane } from "../../test/support/control-plane.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../../test/support/docker.js";
import { keyDir, startGatewayProcess } from "../../test/support/gateway.js";
import { startOperatorWithKubeconfig } from "../../test/support/operator.js";
import { REPO_ROOT } from "../../test/support/paths.js";
import { percentile } from "../support/stats.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "10" },
    "size-mib": { type: "string", default: "1024" },
  },
});
const ROUNDS = Number(values.rounds);
const SIZE_MIB = Number(values["size-mib"]);
const OWNER = `bench-idle-${process.pid}`;

const stats = (s: number[]) => ({
  p50: Math.round(percentile(s, 50)),
  p99: Math.round(percentile(s, 99)),
  max: Math.round(Math.max(...s)),
  n: s.length,
});

const SERVER = `
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
`;

const loadBefore = loadavg();
const cp = await startControlPlane({ crds: true });
const engine = await ensureDockerd();
buildAgent();
const kc = cp.kubeConfig();
const ns = "bench-idle";
await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
const operator = await startOperatorWithKubeconfig(cp.kubeconfigPath, {
  namespace: ns,
  defaultBackend: "docker",
  egressImage: OPERATOR_IMAGE,
  docker: {
    client: engine,
    settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
    sweepIntervalMs: 5000,
  },
});
const gw = await startGatewayProcess({
  name: "bench-idle-gateway",
  kubeconfig: cp.kubeconfigPath,
  keysDir: keyDir(),
  dockerHost: `unix://${(engine.modem as { socketPath?: string }).socketPath}`,
  logDir: mkdtempSync(join(tmpdir(), "bench-idle-")),
  extra: ["--log-level=warn"],
});
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const adminToken = kc.getCurrentUser()!.token!;

async function sleepLikeTheOperator(name: string): Promise<void> {
  const s = (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: SANDBOX_PLURAL,
    namespace: ns,
    name,
  })) as { metadata: { uid: string } };
  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: SANDBOX_PLURAL,
      namespace: ns,
      name,
      body: idleSuspendPatch(s.metadata.uid),
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
  for (;;) {
    const r = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      plural: SANDBOX_PLURAL,
      namespace: ns,
      name,
    })) as { status?: { phase?: string } };
    const left = await labelled("container", `sandboxing.dev/sandbox=${name}`);
    if (r.status?.phase === "Suspended" && left.length === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
}

const timed = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  backend: "docker",
  rounds: ROUNDS,
  workspaceMiB: SIZE_MIB,
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
  },
  versions: { docker: (await engine.version()).Version },
};
try {
  const sdk = { kubeconfig: kc, namespace: ns, docker: engine };
  const spec = {
    image: SANDBOX_IMAGE,
    command: ["python3", "-c", SERVER],
    ports: [{ name: "http", port: 8000 }],
    workspace: {},
  };
  const [a, b, c] = await Promise.all(
    ["sdk", "gw-exec", "gw-port"].map((name) => Sandbox.create(spec, { ...sdk, name })),
  );
  if (SIZE_MIB > 0) {
    const fill = await a!.exec([
      "sh",
      "-c",
      `head -c ${SIZE_MIB}M /dev/urandom > /workspace/blob && sync && du -sm /workspace`,
    ]);
    if (fill.exitCode !== 0) throw new Error(`fill: ${fill.stderr}`);
    console.log(`workspace filled: ${fill.stdout.trim()}`);
  }
  const u = new URL(gw.url);
  const viaGw = new AgentClient({
    host: u.hostname,
    port: Number(u.port),
    token: adminToken,
    basePath: `/v1/namespaces/${ns}/sandboxes/gw-exec`,
  });
  const portUrl = `${gw.url}/sandboxes/${ns}/gw-port/ports/8000/`;
  const getPort = async () => {
    const r = await fetch(portUrl, { headers: { authorization: `Bearer ${adminToken}` } });
    if (r.status !== 200) throw new Error(`port GET: ${r.status} ${await r.text()}`);
    await r.text();
  };
  const sdkExec = async () => {
    const r = await a!.exec(["true"]);
    if (r.exitCode !== 0) throw new Error("exec failed");
  };
  const gwExec = async () => {
    const r = await viaGw.exec(["true"]);
    if (r.exitCode !== 0) throw new Error("exec failed");
  };
  const warm = { sdk: [] as number[], gwExec: [] as number[], gwPort: [] as number[] };
  const cold = { sdk: [] as number[], gwExec: [] as number[], gwPort: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    for (let j = 0; j < 5; j++) {
      warm.sdk.push(await timed(sdkExec));
      warm.gwExec.push(await timed(gwExec));
      warm.gwPort.push(await timed(getPort));
    }
    await Promise.all(["sdk", "gw-exec", "gw-port"].map(sleepLikeTheOperator));
    // One at a time: each measures its own resume on a 2-core machine.
    cold.sdk.push(await timed(sdkExec));
    cold.gwExec.push(await timed(gwExec));
    cold.gwPort.push(await timed(getPort));
    console.log(
      `round ${i + 1}: SDK exec ${Math.round(cold.sdk.at(-1)!)} ms, gateway exec ${Math.round(cold.gwExec.at(-1)!)} ms, gateway port ${Math.round(cold.gwPort.at(-1)!)} ms`,
    );
  }
  results.summary = {
    note: "ms as the caller sees it; resume = a call on an idle-suspended sandbox (containers removed), running = the same call on a running one",
    resume: {
      sdkExec: stats(cold.sdk),
      gatewayExec: stats(cold.gwExec),
      gatewayPortGet: stats(cold.gwPort),
    },
    running: {
      sdkExec: stats(warm.sdk),
      gatewayExec: stats(warm.gwExec),
      gatewayPortGet: stats(warm.gwPort),
    },
  };
  results.load = {
    before: loadBefore.map((x) => +x.toFixed(2)),
    after: loadavg().map((x) => +x.toFixed(2)),
  };
  console.log(JSON.stringify(results.summary, null, 2));
  writeFileSync(
    join(REPO_ROOT, "bench/results/idle.json"),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  viaGw.close();
  for (const s of [a, b, c]) s?.close();
} finally {
  await gw.stop();
  await operator.stop();
  for (const kind of ["container", "network", "volume"] as const) {
    for (const name of await labelled(kind, `sandboxing.dev/owner=${OWNER}`)) {
      await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
    }
  }
  await cp.stop();
}
