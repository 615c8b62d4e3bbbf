// A real Kubernetes control plane for tests, started the way controller-runtime's
// envtest does: etcd + kube-apiserver on free loopback ports, plus (optionally)
// kube-controller-manager for garbage collection and namespaces, kube-scheduler,
// and kwok with a fake node so Pods go Running without a kubelet.
import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { installCRDs } from "./crds.js";
import { REPO_ROOT } from "./paths.js";
import { freePort, reapStale, type Started, startProcess, tail } from "./processes.js";

export interface ControlPlaneOptions {
  /** kube-controller-manager: garbage collector, namespaces, service accounts, Deployments. */
  controllerManager?: boolean;
  /** kube-scheduler, so Pods get a node. */
  scheduler?: boolean;
  /** kwok managing one fake node, so scheduled Pods go Running. */
  kwok?: boolean;
  /** Install the CRDs under crds/. */
  crds?: boolean;
  /**
   * Benchmarks at scale: room on the fake node for this many Pods (and pod
   * addresses for them), and the scheduler and controller-manager without
   * client-side rate limits (as kwokctl's --disable-qps-limits does; API
   * Priority and Fairness stays on), so they never set the pace.
   */
  scale?: { pods: number };
  /** Audit every request, reads and watches too (default: writes only). */
  auditAllVerbs?: boolean;
  /**
   * A client certificate for the apiserver to present to kubelets (exec, logs,
   * port-forward), signed by a CA of its own that real nodes (test/support/node)
   * trust; without it a kubelet would have to allow anonymous requests.
   */
  kubeletClient?: boolean;
  /**
   * More kube-controller-manager controllers, e.g. "endpointslice-controller",
   * which Services need on a real node (kube-proxy routes to EndpointSlices).
   */
  extraControllers?: string[];
}

export interface ControlPlane {
  server: string;
  kubeconfigPath: string;
  adminToken: string;
  /** apiserver audit log of every write (create/update/patch/delete), one JSON event a line. */
  auditLogPath: string;
  dir: string;
  binDir: string;
  /** The CA of the apiserver's kubelet-client certificate (with `kubeletClient`). */
  kubeletClientCaPath?: string;
  /** Milliseconds each step of start-up took. */
  timings: Record<string, number>;
  kubeConfig(): k8s.KubeConfig;
  /**
   * Kill kube-apiserver (SIGKILL: a crash, connections cut), then, with
   * restartApiserver(), start it again on the same port, certificates and etcd.
   */
  killApiserver(): Promise<void>;
  restartApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export const FAKE_NODE_NAME = "kwok-node-0";

/** Static identities a test can run controllers as: operator-0 ... operator-3. */
export const OPERATOR_USERS = ["operator-0", "operator-1", "operator-2", "operator-3"];

/** Deterministic per-user token derived from the admin token (only valid for this control plane). */
export function tokenFor(adminToken: string, user: string): string {
  return createHash("sha256").update(`${adminToken}/${user}`).digest("hex");
}

/** Directory holding etcd, kube-apiserver, ...: built (or found in the cache) by hack/k8s-bins. */
export function k8sBinDir(): string {
  return execFileSync("bash", [join(REPO_ROOT, "hack/k8s-bins/build.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

function runRoot(): string {
  const base = join(
    process.env.SANDBOX_OPERATOR_CACHE ?? join(homedir(), ".cache/sandbox-operator"),
    "control-planes",
  );
  reapStale(base);
  const dir = join(base, `${process.pid}-${randomBytes(4).toString("hex")}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const auditPolicy = (allVerbs: boolean) => `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # Log reads too: tests prove who read a Pod's output (the gateway) and how.
  - level: Metadata
    resources: [{ group: "", resources: ["pods/log"] }]
  - level: Metadata
${allVerbs ? "" : "    verbs: [create, update, patch, delete, deletecollection]\n"}  - level: None
`;

/** client-go's limits when kwokctl disables them: high enough never to be reached here. */
const UNTHROTTLED = ["--kube-api-qps=5000", "--kube-api-burst=10000"];

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const timings: Record<string, number> = {};
  const time = async <T>(step: string, fn: () => Promise<T> | T): Promise<T> => {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      timings[step] = Math.round(performance.now() - start);
    }
  };

  const binDir = await time("binaries", k8sBinDir);
  const dir = runRoot();
  const started: Started[] = [];
  const remember = (p: Started) => {
    started.push(p);
    appendFileSync(join(dir, "pids"), `${p.child.pid}\n`);
    return p;
  };
  const stop = async () => {
    for (const p of started.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const etcdUrl = await time("etcd", () => startEtcd(binDir, dir, remember));
    const adminToken = randomBytes(24).toString("hex");
    const kubeletClient = opts.kubeletClient ? kubeletClientCert(dir) : undefined;
    const apiserver = await time("kube-apiserver", () =>
      startApiserver(
        binDir,
        dir,
        etcdUrl,
        adminToken,
        !!opts.auditAllVerbs,
        remember,
        kubeletClient,
      ),
    );
    const { server, caPath, auditLogPath } = apiserver;
    const kubeconfigPath = join(dir, "admin.kubeconfig");
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, caPath, adminToken));
    for (const user of OPERATOR_USERS) {
      writeFileSync(
        join(dir, `${user}.kubeconfig`),
        kubeconfigYaml(server, caPath, tokenFor(adminToken, user), user),
      );
    }
    const kubeConfig = () => {
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    };

    const kc = kubeConfig();
    // CRDs first: the garbage collector discovers resource types at start-up and
    // only every 30 s after, and cannot collect what an unknown owner owned.
    if (opts.crds) await time("crds", () => installCRDs(kc));
    if (opts.controllerManager) {
      remember(
        startProcess(
          "kube-controller-manager",
          join(binDir, "kube-controller-manager"),
          [
            `--kubeconfig=${kubeconfigPath}`,
            `--controllers=${[
              "garbage-collector-controller",
              "namespace-controller",
              "serviceaccount-controller",
              "deployment-controller",
              "replicaset-controller",
              ...(opts.extraControllers ?? []),
            ].join(",")}`,
            "--leader-elect=false",
            "--secure-port=0",
            `--concurrent-gc-syncs=${opts.scale ? 20 : 5}`,
            ...(opts.scale ? UNTHROTTLED : []),
          ],
          dir,
        ),
      );
    }
    if (opts.scheduler) {
      remember(
        startProcess(
          "kube-scheduler",
          join(binDir, "kube-scheduler"),
          [
            `--kubeconfig=${kubeconfigPath}`,
            "--leader-elect=false",
            "--secure-port=0",
            ...(opts.scale ? UNTHROTTLED : []),
          ],
          dir,
        ),
      );
    }
    if (opts.kwok) {
      await time("kwok", () =>
        startKwok(binDir, dir, kubeconfigPath, kc, opts.scale?.pods, remember),
      );
    }

    return {
      server,
      kubeconfigPath,
      adminToken,
      auditLogPath,
      dir,
      binDir,
      kubeletClientCaPath: kubeletClient?.caPath,
      timings,
      kubeConfig,
      killApiserver: async () => {
        const { child } = apiserver.proc;
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        process.kill(-child.pid!, "SIGKILL");
        await exited;
      },
      restartApiserver: async () => {
        apiserver.proc = remember(apiserver.launch());
        await apiserver.waitReady(apiserver.proc);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startEtcd(
  binDir: string,
  dir: string,
  remember: (p: Started) => Started,
): Promise<string> {
  const [client, peer] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const etcd = remember(
    startProcess(
      "etcd",
      join(binDir, "etcd"),
      [
        "--name=test",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=test=${peerUrl}`,
        "--unsafe-no-fsync=true",
        "--log-level=warn",
      ],
      dir,
    ),
  );
  await waitFor("etcd", etcd, async () => (await fetch(`${clientUrl}/health`)).ok);
  return clientUrl;
}

async function startApiserver(
  binDir: string,
  dir: string,
  etcdUrl: string,
  adminToken: string,
  auditAllVerbs: boolean,
  remember: (p: Started) => Started,
  kubeletClient?: KubeletClientCert,
): Promise<{
  server: string;
  caPath: string;
  auditLogPath: string;
  /** The running process (replaced by a restart). */
  proc: Started;
  /** Start another kube-apiserver exactly like the first (same port, certificates, etcd). */
  launch(): Started;
  waitReady(proc: Started): Promise<void>;
}> {
  const port = await freePort();
  const certDir = join(dir, "certs");
  mkdirSync(certDir);
  const { publicKey, privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  writeFileSync(join(dir, "sa.pub"), publicKey);
  writeFileSync(join(dir, "sa.key"), privateKey);
  // Extra identities, so a test can tell which of several controllers made a
  // request (the audit log records the user).
  const users = OPERATOR_USERS.map(
    (u) => `${tokenFor(adminToken, u)},${u},${u}-uid,"system:masters"`,
  );
  writeFileSync(
    join(dir, "tokens.csv"),
    `${[`${adminToken},admin,admin-uid,"system:masters"`, ...users].join("\n")}\n`,
  );
  writeFileSync(join(dir, "audit-policy.yaml"), auditPolicy(auditAllVerbs));
  const auditLogPath = join(dir, "audit.log");

  const launch = () =>
    startProcess(
      "kube-apiserver",
      join(binDir, "kube-apiserver"),
      [
        `--etcd-servers=${etcdUrl}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        `--token-auth-file=${join(dir, "tokens.csv")}`,
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${join(dir, "sa.pub")}`,
        `--service-account-signing-key-file=${join(dir, "sa.key")}`,
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
        `--audit-log-path=${auditLogPath}`,
        "--audit-log-mode=blocking",
        "--audit-log-format=json",
        // Never rotate (0 would mean lumberjack's 100 MB): readers keep byte offsets.
        "--audit-log-maxsize=1000000",
        ...(kubeletClient
          ? [
              `--kubelet-client-certificate=${kubeletClient.certPath}`,
              `--kubelet-client-key=${kubeletClient.keyPath}`,
              "--kubelet-preferred-address-types=InternalIP",
            ]
          : []),
      ],
      dir,
    );
  const server = `https://127.0.0.1:${port}`;
  const caPath = join(certDir, "apiserver.crt");
  const waitReady = (proc: Started) =>
    waitFor("kube-apiserver", proc, async () => {
      const res = await fetchInsecure(`${server}/readyz`, adminToken);
      return res === 200;
    });
  const proc = remember(launch());
  await waitReady(proc);
  return { server, caPath, auditLogPath, proc, launch, waitReady };
}

interface KubeletClientCert {
  caPath: string;
  certPath: string;
  keyPath: string;
}

/**
 * A CA and the apiserver's client certificate for kubelets, in system:masters
 * so the kubelet's webhook authorization (a SubjectAccessReview) allows it.
 */
function kubeletClientCert(dir: string): KubeletClientCert {
  const pki = join(dir, "kubelet-client");
  mkdirSync(pki);
  const p = (f: string) => join(pki, f);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-days",
    "7",
    "-subj",
    "/CN=kubelet-client-ca",
  );
  openssl(
    "req",
    ...ec,
    "-keyout",
    p("client.key"),
    "-out",
    p("client.csr"),
    "-subj",
    "/O=system:masters/CN=kube-apiserver-kubelet-client",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    p("client.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-out",
    p("client.crt"),
    "-days",
    "7",
  );
  return { caPath: p("ca.crt"), certPath: p("client.crt"), keyPath: p("client.key") };
}

async function startKwok(
  binDir: string,
  dir: string,
  kubeconfigPath: string,
  kc: k8s.KubeConfig,
  pods: number | undefined,
  remember: (p: Started) => Started,
): Promise<void> {
  const capacity = pods
    ? { cpu: String(pods), memory: `${pods}Gi`, pods: String(pods) }
    : { cpu: "64", memory: "256Gi", pods: "500" };
  remember(
    startProcess(
      "kwok",
      join(binDir, "kwok"),
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--config=${join(REPO_ROOT, "test/support/kwok/stages.yaml")}`,
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=10.244.0.1",
        // A /24 is plenty for tests; a benchmark's thousands of Pods need a /16.
        `--cidr=${pods ? "10.245.0.0/16" : "10.244.1.0/24"}`,
        "--server-address=",
      ],
      dir,
    ),
  );
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNode({
    body: {
      metadata: {
        name: FAKE_NODE_NAME,
        annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
        labels: {
          "kubernetes.io/hostname": FAKE_NODE_NAME,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          type: "kwok",
        },
      },
      status: {
        allocatable: capacity,
        capacity,
      },
    },
  });
  // The NodeRestriction/TaintNodesByCondition admission adds a not-ready taint
  // that only the node-lifecycle controller would lift; we do not run it (it
  // would evict pods from a node without a kubelet), so lift it here.
  await core.patchNode(
    { name: FAKE_NODE_NAME, body: [{ op: "replace", path: "/spec/taints", value: [] }] },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
  );
  // Ready once kwok has taken the node over and reports it Ready.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const node = await core.readNode({ name: FAKE_NODE_NAME });
    if (node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return;
    await sleep(100);
  }
  throw new Error(`kwok did not make ${FAKE_NODE_NAME} Ready:\n${tail(join(dir, "kwok.log"))}`);
}

function kubeconfigYaml(server: string, caPath: string, token: string, user = "admin"): string {
  const ca = readFileSync(caPath).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
  - name: test
    cluster:
      server: ${server}
      certificate-authority-data: ${ca}
users:
  - name: ${user}
    user:
      token: ${token}
contexts:
  - name: test
    context: {cluster: test, user: ${user}}
current-context: test
`;
}

/** The apiserver's serving certificate is generated on start-up, so readiness is probed without it. */
async function fetchInsecure(url: string, token: string): Promise<number> {
  const https = await import("node:https");
  return new Promise((resolve) => {
    const req = https.get(
      url,
      { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

async function waitFor(
  name: string,
  proc: Started,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) {
      throw new Error(`${name} exited with ${proc.child.exitCode}:\n${tail(proc.logPath)}`);
    }
    try {
      if (await ready()) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`${name} not ready after ${timeoutMs} ms:\n${tail(proc.logPath)}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
