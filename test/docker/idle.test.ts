// Idle auto-suspend and resume on use, end to end on the docker backend: the
// real control plane, the operator with the docker backend on the real
// dockerd, the in-sandbox agent, and `sandbox-operator gateway` as a child
// process running with only the chart's gateway RBAC (a ServiceAccount's
// token). idleTimeout is the API's minimum, 10 s.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { Sandbox, SandboxSuspendedError } from "../../packages/sdk/src/index.js";
import { ConditionReason } from "../../src/api/conditions.js";
import { GROUP, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { IdleMark } from "../../src/api/idle.js";
import type { Sandbox as SandboxResource } from "../../src/api/sandbox.js";
import { AgentClient } from "../../src/dataplane/client.js";
import { buildAgent } from "../support/agent.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  docker,
  ensureDockerd,
  labelled,
  OPERATOR_IMAGE,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import { type GatewayProcess, keyDir, startGatewayProcess } from "../support/gateway.js";
import { type RunningOperator, startOperator } from "../support/operator.js";

const kc = kubeConfig();
const OWNER = `test-idle-${process.pid}`;
const IDLE = "10s";
const IDLE_MS = 10_000;
let ns: Awaited<ReturnType<typeof testNamespace>>;
let engine: Docker;
let operator: RunningOperator | undefined;
let gw: GatewayProcess;
let gwShort: GatewayProcess;
let userToken: string;

/** A workload serving port 8000: answers "hello <path>". */
const SERVER = String.raw`
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        b = ("hello " + self.path).encode()
        self.send_response(200); self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
`;

const custom = () => kc.makeApiClient(k8s.CustomObjectsApi);
const core = () => kc.makeApiClient(k8s.CoreV1Api);
const rbac = () => kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const sdk = () => ({ kubeconfig: kc, namespace: ns.name, docker: engine });

async function read(name: string): Promise<SandboxResource> {
  return (await custom().getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: SANDBOX_PLURAL,
    namespace: ns.name,
    name,
  })) as SandboxResource;
}

const readyTrue = (s: SandboxResource) =>
  s.status?.phase === "Running" &&
  s.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");

async function create(name: string, idleTimeout: string | undefined = IDLE): Promise<Sandbox> {
  return Sandbox.create(
    {
      image: SANDBOX_IMAGE,
      command: ["python3", "-c", SERVER],
      ports: [{ name: "http", port: 8000 }],
      ...(idleTimeout ? { idleTimeout } : {}),
    },
    { ...sdk(), name },
  );
}

/** Waits until the operator suspended it for idleness; returns when it saw it. */
async function idleSuspended(name: string, timeout = 60_000): Promise<SandboxResource> {
  return eventually(
    async () => {
      const s = await read(name);
      expect(s.spec.suspended).toBe(true);
      expect(s.metadata.annotations?.[IdleMark.annotation]).toBe(IdleMark.value);
      expect(s.status?.phase).toBe("Suspended");
      return s;
    },
    { timeout, interval: 200 },
  );
}

async function workloadContainers(name: string): Promise<string[]> {
  return labelled("container", `sandboxing.dev/sandbox=${name}`);
}

/** A kubeconfig for a ServiceAccount bound to exactly the chart's gateway rules. */
async function gatewayKubeconfig(): Promise<string> {
  const name = "sandbox-gateway";
  await core().createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  const roleName = `${ns.name}-gateway`;
  await rbac().createClusterRole({
    body: {
      metadata: { name: roleName },
      rules: [
        { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
        {
          apiGroups: ["authorization.k8s.io"],
          resources: ["subjectaccessreviews"],
          verbs: ["create"],
        },
        { apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs: ["get", "list", "watch"] },
        { apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs: ["patch"] },
      ],
    },
  });
  await rbac().createClusterRoleBinding({
    body: {
      metadata: { name: roleName },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns.name }],
    },
  });
  const token = await saToken(name);
  const cfg = parseYaml(readFileSync(inject("kubeconfigPath"), "utf8"));
  cfg.users = [{ name: "gateway", user: { token } }];
  for (const c of cfg.contexts) c.context.user = "gateway";
  const path = join(mkdtempSync(join(tmpdir(), "idle-gw-")), "kubeconfig");
  writeFileSync(path, toYaml(cfg));
  return path;
}

async function saToken(name: string): Promise<string> {
  const tr = await core().createNamespacedServiceAccountToken({
    namespace: ns.name,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } } as k8s.AuthenticationV1TokenRequest,
  });
  return tr.status!.token!;
}

/** A user of the data plane: the gateway's custom verbs on sandboxes in the namespace, nothing else. */
async function userOfTheGateway(): Promise<string> {
  const name = "user";
  await core().createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  await rbac().createNamespacedRole({
    namespace: ns.name,
    body: {
      metadata: { name },
      rules: [
        {
          apiGroups: [GROUP],
          resources: [SANDBOX_PLURAL],
          verbs: ["get", "exec", "files", "connect"],
        },
      ],
    },
  });
  await rbac().createNamespacedRoleBinding({
    namespace: ns.name,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns.name }],
    },
  });
  return saToken(name);
}

function viaGateway(name: string, g = gw): AgentClient {
  const u = new URL(g.url);
  return new AgentClient({
    host: u.hostname,
    port: Number(u.port),
    token: userToken,
    basePath: `/v1/namespaces/${ns.name}/sandboxes/${name}`,
  });
}

beforeAll(async () => {
  engine = await ensureDockerd();
  buildAgent();
  ns = await testNamespace(kc, "idle");
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    defaultBackend: "docker",
    egressImage: OPERATOR_IMAGE,
    docker: {
      client: engine,
      settings: { owner: OWNER, upstreamDns: "127.0.0.1", publishAddress: "127.0.0.1" },
      sweepIntervalMs: 5000,
    },
  });
  const [kubeconfig, token] = await Promise.all([gatewayKubeconfig(), userOfTheGateway()]);
  userToken = token;
  const keysDir = keyDir();
  const dockerHost = `unix://${(engine.modem as { socketPath?: string }).socketPath}`;
  const logDir = mkdtempSync(join(tmpdir(), "idle-gw-logs-"));
  [gw, gwShort] = await Promise.all([
    startGatewayProcess({ name: "gateway-idle", kubeconfig, keysDir, dockerHost, logDir }),
    startGatewayProcess({
      name: "gateway-idle-short",
      kubeconfig,
      keysDir,
      dockerHost,
      logDir,
      extra: ["--resume-timeout=3"],
    }),
  ]);
}, 600_000);

afterAll(async () => {
  await Promise.all([gw?.stop(), gwShort?.stop()]);
  await operator?.stop();
  for (const kind of ["container", "network", "volume"] as const) {
    for (const name of await labelled(kind, `sandboxing.dev/owner=${OWNER}`)) {
      await docker(kind === "container" ? ["rm", "-f", "-v", name] : [kind, "rm", name]);
    }
  }
  await rbac()
    .deleteClusterRole({ name: `${ns?.name}-gateway` })
    .catch(() => {});
  await rbac()
    .deleteClusterRoleBinding({ name: `${ns?.name}-gateway` })
    .catch(() => {});
  await ns?.delete();
}, 120_000);

describe("idle auto-suspend (docker backend)", () => {
  it("suspends an unused sandbox after its idleTimeout, with an Event, and not before", async () => {
    const box = await create("unused");
    // The idle period starts when Ready became True (the condition's time, to the second).
    const ready = (await read("unused")).status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.status).toBe("True");
    const readyAt = Date.parse(String(ready!.lastTransitionTime));
    expect(await workloadContainers("unused")).not.toEqual([]);
    // Well before the timeout it still runs.
    await new Promise((r) => setTimeout(r, Math.max(0, readyAt + IDLE_MS - 3000 - Date.now())));
    expect((await read("unused")).spec.suspended).toBeUndefined();
    const s = await idleSuspended("unused");
    const after = Date.now() - readyAt;
    expect(after).toBeGreaterThanOrEqual(IDLE_MS - 1000);
    expect(after).toBeLessThan(IDLE_MS + 15_000);
    expect(s.status?.conditions?.find((c) => c.type === "Suspended")).toMatchObject({
      status: "True",
      reason: ConditionReason.IdleTimeout,
    });
    await eventually(async () => expect(await workloadContainers("unused")).toEqual([]));
    const events = await kc.makeApiClient(k8s.EventsV1Api).listNamespacedEvent({
      namespace: ns.name,
      fieldSelector: "regarding.name=unused",
    });
    const idle = events.items.find((e) => e.reason === "IdleSuspended");
    expect(idle?.note).toMatch(/no data-plane call or port traffic for 1\ds .*idleTimeout 10s/);
    box.close();
  }, 120_000);

  it("data-plane calls (SDK) and port traffic (gateway) postpone it; it suspends once they stop", async () => {
    const [calls, ports, control] = await Promise.all([
      create("calls"),
      create("porty"),
      create("control"),
    ]);
    // 25 s of use, every 3 s: longer than two idle periods.
    const until = Date.now() + 25_000;
    while (Date.now() < until) {
      await calls.exec(["true"]);
      const r = await fetch(`${gw.url}/sandboxes/${ns.name}/porty/ports/8000/tick`, {
        headers: { "x-sandbox-token": userToken },
      });
      expect(r.status).toBe(200);
      await r.text();
      await new Promise((r) => setTimeout(r, 3000));
    }
    const stoppedAt = Date.now();
    // The control sandbox, unused, went to sleep meanwhile; the used ones did not.
    await idleSuspended("control", 5000);
    for (const name of ["calls", "porty"]) {
      const s = await read(name);
      expect(s.spec.suspended, name).toBeUndefined();
      expect(s.status?.phase, name).toBe("Running");
    }
    // Without use they suspend within an idle period (and some slack) of the last call.
    await Promise.all([idleSuspended("calls", 30_000), idleSuspended("porty", 30_000)]);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(IDLE_MS - 3000);
    for (const b of [calls, ports, control]) b.close();
  }, 180_000);
});

describe("resume on use (docker backend)", () => {
  it("an SDK call to an idle-suspended sandbox resumes it and succeeds", async () => {
    const box = await create("sdk-wake");
    await box.exec(["sh", "-c", "echo kept > /tmp/marker"]);
    await idleSuspended("sdk-wake");
    // The same Sandbox object: its endpoints are stale, its last read says Running.
    const t0 = Date.now();
    const r = await box.exec(["echo", "awake"]);
    const ms = Date.now() - t0;
    expect(r.stdout).toBe("awake\n");
    const s = await read("sdk-wake");
    expect(readyTrue(s)).toBe(true);
    expect(s.spec.suspended).toBe(false);
    expect(s.metadata.annotations?.[IdleMark.annotation]).toBeUndefined();
    // A declared port through the direct transport wakes it too (after it sleeps again).
    await idleSuspended("sdk-wake");
    const res = await box.fetch(8000, "/again");
    expect(await res.text()).toBe("hello /again");
    console.log(`SDK exec on an idle-suspended sandbox: ${ms} ms`);
    box.close();
  }, 180_000);

  it("gateway calls (an exec, a port request) resume it and succeed", async () => {
    const [a, b] = await Promise.all([create("gw-exec"), create("gw-port")]);
    await Promise.all([idleSuspended("gw-exec"), idleSuspended("gw-port")]);
    // Several concurrent calls share one resume.
    const results = await Promise.all([
      viaGateway("gw-exec").exec(["echo", "one"]),
      viaGateway("gw-exec").exec(["echo", "two"]),
    ]);
    expect(results.map((r) => r.stdout)).toEqual(["one\n", "two\n"]);
    const res = await fetch(`${gw.url}/sandboxes/${ns.name}/gw-port/ports/8000/woken`, {
      headers: { "x-sandbox-token": userToken },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello /woken");
    for (const name of ["gw-exec", "gw-port"]) expect(readyTrue(await read(name))).toBe(true);
    const metrics = await (await fetch(`${gw.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/sandbox_gateway_resumes_total\{result="resumed"\} 2/);
    a.close();
    b.close();
  }, 180_000);

  it("a sandbox a person suspended is not woken by a call; resume() brings it back", async () => {
    const box = await create("manual", undefined);
    await box.suspend();
    await eventually(async () => expect((await read("manual")).status?.phase).toBe("Suspended"));
    const viaGw = await viaGateway("manual")
      .exec(["true"])
      .catch((e) => e);
    expect(viaGw.status).toBe(409);
    expect(viaGw.code).toBe("SANDBOX_SUSPENDED");
    const direct = await box.exec(["true"]).catch((e) => e);
    expect(direct).toBeInstanceOf(SandboxSuspendedError);
    expect(direct.message).toMatch(/suspended by its owner.*kubectl sandbox resume manual/);
    expect((await read("manual")).spec.suspended).toBe(true);
    await box.resume();
    expect((await box.exec(["echo", "back"])).stdout).toBe("back\n");
    box.close();
  }, 120_000);

  it("a resume that cannot finish in time is a 503 with Retry-After", async () => {
    const box = await create("stuck");
    await idleSuspended("stuck");
    // While it sleeps its image becomes one that does not exist: it cannot come back.
    await custom().patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: SANDBOX_PLURAL,
        namespace: ns.name,
        name: "stuck",
        body: { spec: { image: "sandbox-operator/does-not-exist:1" } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const t0 = Date.now();
    const res = await fetch(`${gwShort.url}/v1/namespaces/${ns.name}/sandboxes/stuck/version`, {
      headers: { authorization: `Bearer ${userToken}` },
    });
    const waited = Date.now() - t0;
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("SANDBOX_RESUMING");
    expect(body.error.message).toMatch(/did not become Ready within 3000 ms/);
    expect(waited).toBeGreaterThanOrEqual(3000);
    expect(waited).toBeLessThan(8000);
    // It was resumed (spec), so the operator keeps trying to start it; the caller got a clear answer.
    expect((await read("stuck")).spec.suspended).toBe(false);
    box.close();
  }, 120_000);
});
