// The gateway on the pod backend, on the real node: `sandbox-operator gateway`
// runs as a Pod from the operator image in a gateway namespace (not as a host
// process: traffic from the node itself is not what a NetworkPolicy judges,
// so only a Pod is fenced like a real deployment), and reaches the sandboxes'
// agents at their pod IPs, never through pods/exec or pods/portforward. The
// operator runs with the gateway's namespace and the shared agent key.
//
// Attacks: a Pod carrying the gateway label in another namespace, an
// unlabelled Pod in the gateway namespace, and another sandbox's workload
// allowed to reach the sandbox's address cannot open the agent port; a
// labelled Pod in the gateway namespace reaches it and still needs the
// credential, and a re-created sandbox's agent refuses its predecessor's.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Sandbox } from "../../packages/sdk/src/index.js";
import { GROUP, SANDBOX_PLURAL } from "../../src/api/group.js";
import { deriveAgentToken } from "../../src/backends/agent.js";
import { generateKeyFiles } from "../../src/gateway/keys.js";
import { completedRequests } from "../support/audit-log.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { OPERATOR_IMAGE } from "../support/docker.js";
import { eventually } from "../support/eventually.js";
import type { ContainerdPaths } from "../support/node/containerd.js";
import { importDockerImages } from "../support/node/images.js";
import {
  barePod,
  isRunningReady,
  kubectl,
  NODE_SANDBOX_IMAGE,
  NODE_TEST_RESOURCES,
  waitPod,
} from "../support/node/pods.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const kc = kubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const IMAGE = process.env.SANDBOX_NODE_OPERATOR_IMAGE ?? OPERATOR_IMAGE;
const GATEWAY_LABEL = { [`${GROUP}/gateway`]: "true" };
const agentKey = randomBytes(32);
let ns: Awaited<ReturnType<typeof testNamespace>>;
let gwNs: Awaited<ReturnType<typeof testNamespace>>;
let evilNs: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator;
let sbx: SandboxClient;
let gwUrl: string;
let alice: string; // get, exec, files, connect, logs, mint on sandboxes in ns
let bob: string; // get only
const ip: Record<string, string> = {};
const uid: Record<string, string> = {};

/** A workload answering "{port} {path}" on 8000. */
const SERVE = [
  "python3",
  "-c",
  [
    "import http.server",
    "class H(http.server.BaseHTTPRequestHandler):",
    "    def do_GET(self):",
    "        b = ('%d %s' % (self.server.server_port, self.path)).encode(); self.send_response(200); self.end_headers(); self.wfile.write(b)",
    'http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()',
  ].join("\n"),
];

async function saToken(namespace: string, name: string): Promise<string> {
  const tr = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } } as k8s.AuthenticationV1TokenRequest,
  });
  return tr.status!.token!;
}

async function user(name: string, verbs: string[]): Promise<string> {
  await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name } } });
  await rbac.createNamespacedRole({
    namespace: ns.name,
    body: {
      metadata: { name },
      rules: [{ apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns.name,
    body: {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns.name }],
    },
  });
  return saToken(ns.name, name);
}

/** The gateway as the chart runs it, with its own ServiceAccount and a kubeconfig pointing at the relay. */
async function startGatewayPod(): Promise<string> {
  const name = "sandbox-gateway";
  const role = `${gwNs.name}-gateway`;
  await core.createNamespacedServiceAccount({ namespace: gwNs.name, body: { metadata: { name } } });
  await rbac.createClusterRole({
    body: {
      metadata: { name: role },
      rules: [
        { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
        {
          apiGroups: ["authorization.k8s.io"],
          resources: ["subjectaccessreviews"],
          verbs: ["create"],
        },
        { apiGroups: [GROUP], resources: [SANDBOX_PLURAL], verbs: ["get", "list", "watch"] },
        // As the chart grants it: the logs route reads the workload's output from pods/log.
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
      ],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: role },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name, namespace: gwNs.name }],
    },
  });
  // The node's kubeconfig names the apiserver as Pods can reach it; the credential is the gateway's.
  const kubeconfig = readFileSync(join(inject("nodeDir"), "node.kubeconfig"), "utf8").replace(
    /\{token: [^}]+\}/,
    `{token: ${await saToken(gwNs.name, name)}}`,
  );
  await core.createNamespacedSecret({
    namespace: gwNs.name,
    body: {
      metadata: { name },
      stringData: { kubeconfig, "signing.key": generateKeyFiles().privatePem },
      data: { "agent.key": agentKey.toString("base64") },
    },
  });
  const mount = (key: string, dir: string) => ({
    name: key.replace(".", "-"),
    secret: { secretName: name, items: [{ key, path: key }], defaultMode: 0o400 },
    mountPath: dir,
  });
  const mounts = [
    mount("kubeconfig", "/etc/gw/kube"),
    mount("signing.key", "/etc/gw/keys"),
    mount("agent.key", "/etc/gw/agent"),
  ];
  await core.createNamespacedPod({
    namespace: gwNs.name,
    body: {
      metadata: { name, labels: GATEWAY_LABEL },
      spec: {
        serviceAccountName: name,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 1,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: 65532,
          runAsGroup: 65532,
          fsGroup: 65532,
        },
        containers: [
          {
            name: "gateway",
            image: IMAGE,
            imagePullPolicy: "Never",
            args: [
              "gateway",
              "--kubeconfig=/etc/gw/kube/kubeconfig",
              "--listen=0.0.0.0:8443",
              "--metrics-bind-address=0.0.0.0:9090",
              "--keys-dir=/etc/gw/keys",
              "--agent-key-file=/etc/gw/agent/agent.key",
              `--namespaces=${ns.name}`,
            ],
            readinessProbe: { httpGet: { path: "/readyz", port: 9090 }, periodSeconds: 1 },
            resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "384Mi" } },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: mounts.map((m) => ({
              name: m.name,
              mountPath: m.mountPath,
              readOnly: true,
            })),
          },
        ],
        volumes: mounts.map((m) => ({ name: m.name, secret: m.secret })),
      },
    },
  });
  const pod = await waitPod(core, gwNs.name, name, isRunningReady, 180_000).catch(async (err) => {
    console.log((await kubectl(["logs", "-n", gwNs.name, name])).stdout);
    throw err;
  });
  return `http://${pod.status!.podIP!}:8443`;
}

async function ready(name: string) {
  const s = await sbx.waitFor(
    name,
    (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    },
    180_000,
  );
  ip[name] = (await sbx.pod(name))!.status!.podIP!;
  uid[name] = s.metadata!.uid!;
}

beforeAll(async () => {
  importDockerImages(inject("nodeContainerd") as ContainerdPaths, [IMAGE]);
  [ns, gwNs, evilNs] = await Promise.all([
    testNamespace(kc, "gw-sbx"),
    testNamespace(kc, "gw-sys"),
    testNamespace(kc, "gw-evil"),
  ]);
  operator = await startOperator({
    namespace: ns.name,
    user: "operator-1",
    egressImage: IMAGE,
    gateway: { namespace: gwNs.name, agentKey },
  });
  sbx = new SandboxClient(kc, ns.name);
  const spec = { image: NODE_SANDBOX_IMAGE, resources: NODE_TEST_RESOURCES };
  await sbx.create("b", { ...spec, command: SERVE, ports: [{ name: "http", port: 8000 }] });
  // Attackers and a control: the same curl everywhere, so only the fences differ.
  const sleeper = (name: string, labels: Record<string, string> = {}) =>
    barePod(name, ["sleep", "3600"], {}, labels);
  await Promise.all([
    core.createNamespacedPod({ namespace: evilNs.name, body: sleeper("impostor", GATEWAY_LABEL) }),
    core.createNamespacedPod({ namespace: gwNs.name, body: sleeper("unlabelled") }),
    core.createNamespacedPod({ namespace: gwNs.name, body: sleeper("control", GATEWAY_LABEL) }),
  ]);
  [alice, bob] = await Promise.all([
    user("alice", ["get", "exec", "files", "connect", "logs", "mint"]),
    user("bob", ["get"]),
  ]);
  gwUrl = await startGatewayPod();
  await ready("b");
  // The workload of "a" may reach b's address on every port: only b's own fence stands.
  await sbx.create("a", {
    ...spec,
    command: ["sleep", "3600"],
    network: {
      egress: { defaultAction: "deny", rules: [{ action: "allow", target: `${ip.b}/32` }] },
    },
  });
  await ready("a");
  for (const [n, p] of [
    [evilNs.name, "impostor"],
    [gwNs.name, "unlabelled"],
    [gwNs.name, "control"],
  ] as const)
    await waitPod(core, n, p, isRunningReady, 120_000);
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await rbac.deleteClusterRoleBinding({ name: `${gwNs?.name}-gateway` }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: `${gwNs?.name}-gateway` }).catch(() => undefined);
  await Promise.all([ns?.delete(), gwNs?.delete(), evilNs?.delete()]);
});

/** curl from a Pod's container: "<body> <status>", status 000 when nothing answered. */
async function curlFrom(
  namespace: string,
  pod: string,
  container: string,
  url: string,
  token?: string,
) {
  const r = await kubectl([
    ...["exec", "-n", namespace, pod, "-c", container, "--"],
    ...["curl", "-sS", "-m", "3", "--noproxy", "*", "-o", "-", "-w", " %{http_code}"],
    ...(token ? ["-H", `Authorization: Bearer ${token}`] : []),
    url,
  ]);
  return r.stdout.trim();
}

const gw = (path: string, token?: string, init: RequestInit = {}) =>
  fetch(`${gwUrl}${path}`, {
    ...init,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers },
  });
const api = (name: string) => `/v1/namespaces/${ns.name}/sandboxes/${name}`;

async function mint(name: string, verbs: string[]): Promise<string> {
  const r = await gw(`${api(name)}/tokens`, alice, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ verbs, ttlSeconds: 600 }),
  });
  expect(r.status, await r.clone().text()).toBe(201);
  return ((await r.json()) as { token: string }).token;
}

describe("the gateway on the pod backend", { timeout: 180_000 }, () => {
  it("the sandbox's NetworkPolicy admits the agent port from the gateway namespace's gateway Pods only", async () => {
    // As stored (JSON, "from"), not as the client library's model names it.
    const np = JSON.parse(
      (await kubectl(["get", "networkpolicy", "b", "-n", ns.name, "-o", "json"])).stdout,
    );
    expect(np.spec.ingress).toContainEqual({
      from: [
        {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": gwNs.name } },
          podSelector: { matchLabels: GATEWAY_LABEL },
        },
      ],
      ports: [{ protocol: "TCP", port: 15099 }],
    });
  });

  it("exec, files and a declared port end to end through the gateway Pod, at the pod IP", async () => {
    const since = Date.now();
    const box = await Sandbox.get("b", {
      namespace: ns.name,
      gateway: { url: gwUrl, token: await mint("b", ["get", "exec", "files", "connect"]) },
    });
    expect(await box.exec("echo out; echo err >&2; exit 3")).toMatchObject({
      exitCode: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
    expect((await box.exec(["id", "-u"])).stdout).toBe("1000\n");
    const data = randomBytes(3 << 20);
    await box.files.write("/tmp/blob", data);
    expect(Buffer.compare(Buffer.from(await box.files.read("/tmp/blob")), data)).toBe(0);
    const res = await box.fetch(8000, "/hello?x=1");
    expect(await res.text()).toBe("8000 /hello?x=1");
    // A Kubernetes identity with the RBAC verbs works as well, by path.
    const byPath = await gw(`/sandboxes/${ns.name}/b/ports/8000/p`, alice);
    expect(`${byPath.status} ${await byPath.text()}`).toBe("200 8000 /p");
    // Straight to the pod: the apiserver saw no exec, attach or port-forward from anyone.
    const events = await completedRequests(inject("auditLogPath"));
    const streamed = events.filter(
      (e) =>
        e.objectRef?.namespace === ns.name &&
        ["exec", "attach", "portforward"].includes(e.objectRef?.subresource ?? "") &&
        Date.parse(e.requestReceivedTimestamp ?? "") >= since - 1000,
    );
    expect(streamed).toEqual([]);
  });

  it("logs through the gateway: the workload's output from pods/log, read-only, only with the logs verb", async () => {
    const since = Date.now();
    const marker = `logged-${randomBytes(4).toString("hex")}`;
    // The workload (python's http.server) logs each request it serves on stderr.
    const hit = await gw(`/sandboxes/${ns.name}/b/ports/8000/${marker}`, alice);
    expect(hit.status).toBe(200);
    const box = await Sandbox.get("b", {
      namespace: ns.name,
      gateway: { url: gwUrl, token: await mint("b", ["get", "logs"]) },
    });
    await eventually(
      async () => {
        const logs = await box.logs({ tail: 100 });
        let text = "";
        for await (const c of logs.stdout) text += c;
        expect(text).toContain(`GET /${marker} HTTP/1.1`);
      },
      { timeout: 30_000, interval: 500 },
    );
    box.close();
    const refusal = async (r: Response) => [
      r.status,
      ((await r.json()) as { error: { code: string } }).error.code,
    ];
    // A token without the verb, a user without the RBAC verb: refused before any read.
    expect(await refusal(await gw(`${api("b")}/logs`, await mint("b", ["get", "exec"])))).toEqual([
      403,
      "VERB_NOT_GRANTED",
    ]);
    expect(await refusal(await gw(`${api("b")}/logs`, bob))).toEqual([403, "RBAC_DENIED"]);
    // The apiserver saw the gateway read pods/log of b's Pod, and no exec, attach or port-forward.
    const events = (await completedRequests(inject("auditLogPath"))).filter(
      (e) =>
        e.objectRef?.namespace === ns.name &&
        Date.parse(e.requestReceivedTimestamp ?? "") >= since - 1000,
    );
    expect(
      events.filter(
        (e) =>
          e.objectRef?.subresource === "log" &&
          e.user.username === `system:serviceaccount:${gwNs.name}:sandbox-gateway`,
      ).length,
    ).toBeGreaterThan(0);
    expect(
      events.filter((e) =>
        ["exec", "attach", "portforward"].includes(e.objectRef?.subresource ?? ""),
      ),
    ).toEqual([]);
  });

  it("refuses what the authorization matrix refuses, with no side effect", async () => {
    const exec = (name: string, token?: string) =>
      gw(`${api(name)}/exec`, token, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ command: ["touch", "/tmp/pwned"] }),
      });
    const refusal = async (r: Response) => [
      r.status,
      ((await r.json()) as { error: { code: string } }).error.code,
    ];
    expect(await refusal(await exec("b"))).toEqual([401, "NO_CREDENTIAL"]);
    expect(await refusal(await exec("b", bob))).toEqual([403, "RBAC_DENIED"]);
    expect(await refusal(await exec("b", await mint("a", ["exec"])))).toEqual([
      403,
      "WRONG_SANDBOX",
    ]);
    const noFiles = await mint("b", ["exec"]);
    const put = await gw(`${api("b")}/files/content?path=/tmp/pwned`, noFiles, {
      method: "PUT",
      body: "x",
    });
    expect(await refusal(put)).toEqual([403, "VERB_NOT_GRANTED"]);
    const box = await Sandbox.get("b", {
      namespace: ns.name,
      gateway: { url: gwUrl, token: await mint("b", ["get", "exec"]) },
    });
    expect((await box.exec(["test", "-e", "/tmp/pwned"])).exitCode).toBe(1);
  });

  it("a re-created sandbox refuses its predecessor's token and agent credential", async () => {
    await sbx.create("c", {
      image: NODE_SANDBOX_IMAGE,
      resources: NODE_TEST_RESOURCES,
      command: ["sleep", "3600"],
    });
    await ready("c");
    const old = { token: await mint("c", ["get", "exec"]), uid: uid.c!, ip: ip.c! };
    expect((await gw(`${api("c")}/version`, old.token)).status).toBe(200);
    await sbx.delete("c");
    await sbx.waitGone("c", 60_000);
    await sbx.create("c", {
      image: NODE_SANDBOX_IMAGE,
      resources: NODE_TEST_RESOURCES,
      command: ["sleep", "3600"],
    });
    await ready("c");
    expect(uid.c).not.toBe(old.uid);
    await eventually(async () => {
      const r = await gw(`${api("c")}/version`, old.token);
      expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([
        403,
        "SANDBOX_RECREATED",
      ]);
    });
    // The labelled Pod in the gateway namespace reaches the agent port, which still wants the credential:
    const version = `http://${ip.c}:15099/v1/version`;
    expect(await curlFrom(gwNs.name, "control", "main", version)).toMatch(/ 401$/);
    expect(
      await curlFrom(gwNs.name, "control", "main", version, deriveAgentToken(agentKey, old.uid)),
    ).toMatch(/ 401$/);
    expect(
      await curlFrom(gwNs.name, "control", "main", version, deriveAgentToken(agentKey, uid.c!)),
    ).toMatch(/ 200$/);
  });

  it("only the gateway's Pods in the gateway's namespace reach the agent port", async () => {
    const agent = `http://${ip.b}:15099/v1/version`;
    const declared = `http://${ip.b}:8000/x`;
    // The control: labelled, in the gateway namespace. Reached (and refused without the credential).
    expect(await curlFrom(gwNs.name, "control", "main", agent)).toMatch(/ 401$/);
    // The gateway label in another namespace: nothing answers.
    expect(await curlFrom(evilNs.name, "impostor", "main", declared)).toBe("8000 /x 200");
    expect(await curlFrom(evilNs.name, "impostor", "main", agent)).toMatch(/(^| )000$/);
    // The gateway namespace without the label: nothing answers.
    expect(await curlFrom(gwNs.name, "unlabelled", "main", declared)).toBe("8000 /x 200");
    expect(await curlFrom(gwNs.name, "unlabelled", "main", agent)).toMatch(/(^| )000$/);
    // Another sandbox's workload, allowed out to b's address on every port: the declared port only.
    expect(await curlFrom(ns.name, "a", "sandbox", declared)).toBe("8000 /x 200");
    expect(await curlFrom(ns.name, "a", "sandbox", agent)).toMatch(/(^| )000$/);
  });
});
