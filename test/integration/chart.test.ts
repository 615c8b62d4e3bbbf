// The Helm chart against the real apiserver: it lints, its bad values are
// refused, everything it renders passes server-side validation, it installs,
// and the controller running as the chart's ServiceAccount can do its job and
// nothing more.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { enabledBackends, parseControllerFlags } from "../../src/cli/controller-flags.js";
import { parseGatewayFlags } from "../../src/cli/gateway.js";
import { readServiceEndpoint } from "../../src/policy-server/service-endpoint.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperatorWithKubeconfig } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import { isReady, SandboxClient } from "../support/sandboxes.js";

const run = promisify(execFile);
const CHART = join(REPO_ROOT, "charts/sandbox-operator");
const bin = (name: string) => join(inject("k8sBinDir"), name);
const helm = (...args: string[]) =>
  run(bin("helm"), [...args, "--kubeconfig", inject("kubeconfigPath")], { encoding: "utf8" });

const kc = kubeConfig();
const scratch = mkdtempSync(join(tmpdir(), "chart-test-"));
let release: Awaited<ReturnType<typeof testNamespace>>;
let sandboxes: Awaited<ReturnType<typeof testNamespace>>;
let operator: RunningOperator | undefined;

beforeAll(async () => {
  release = await testNamespace(kc, "chart");
  sandboxes = await testNamespace(kc, "chart-sbx");
});
afterAll(async () => {
  await operator?.stop();
  await helm("uninstall", "so", "-n", release.name).catch(() => undefined);
  await release?.delete();
  await sandboxes?.delete();
  rmSync(scratch, { recursive: true, force: true });
});

describe("helm chart", () => {
  it("lints clean", async () => {
    const { stdout } = await helm("lint", CHART, "--strict");
    expect(stdout).toContain("0 chart(s) failed");
  });

  it.each([
    [["--set", "defaultBackend=vm"], "/defaultBackend"],
    [["--set", "replicaCount=0"], "/replicaCount"],
    [
      ["--set", "replicaCount=2", "--set", "leaderElection.enabled=false"],
      "/leaderElection/enabled",
    ],
    [["--set", "imag.tag=typo"], "'imag'"],
    [["--set", "docker.host=localhost:2375"], "/docker/host"],
    [["--set", "heapLimitMiB=16"], "/heapLimitMiB"],
    [["--set", "semiSpaceMiB=-1"], "/semiSpaceMiB"],
  ])("refuses bad values %j with a clear message", async (args, field) => {
    const err = await helm("template", "x", CHART, ...args).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.stderr).toContain("values don't meet the specifications of the schema");
    expect(err.stderr).toContain(field);
  });

  it.each([
    ["cluster-wide", []],
    [
      "namespaced, docker backend",
      [
        "--set",
        "watchNamespaces={default,kube-system}",
        "--set",
        "defaultBackend=docker",
        "--set",
        "docker.host=unix:///var/run/docker.sock",
        "--set",
        "docker.dns=10.0.0.2",
      ],
    ],
    [
      "with the gateway",
      ["--set", "gateway.enabled=true", "--set", "gateway.domain=sbx.example.com"],
    ],
    ["with the policy channel at a fixed address", ["--set", "policyChannel.clusterIP=10.96.0.90"]],
    ["without the policy channel", ["--set", "policyChannel.enabled=false"]],
  ])("renders objects the apiserver accepts (%s)", async (_name, args) => {
    const { stdout } = await helm(
      "template",
      "so",
      CHART,
      "-n",
      release.name,
      "--kube-version",
      "1.34.0",
      ...args,
    );
    const file = join(scratch, `rendered-${args.length}.yaml`);
    writeFileSync(file, stdout);
    const { stdout: out } = await run(
      bin("kubectl"),
      ["--kubeconfig", inject("kubeconfigPath"), "apply", "--dry-run=server", "-f", file],
      { encoding: "utf8" },
    );
    // The controller accepts the flags the chart renders.
    const objects = k8s.loadAllYaml(stdout);
    const deployment = objects.find(
      (o) => o?.kind === "Deployment" && o.spec.template.spec.containers[0].name === "controller",
    ) as k8s.V1Deployment;
    const container = deployment.spec!.template.spec!.containers[0]!;
    const flags = parseControllerFlags(container.args!.slice(1));
    // V8's heap is capped below the container's memory limit (see values.yaml).
    expect(container.env).toContainEqual({
      name: "NODE_OPTIONS",
      value: "--max-old-space-size=384 --max-semi-space-size=1",
    });
    // The policy channel is on unless turned off; the operator reads its
    // Service's address at start, and may read that Service and no other.
    const policyService = objects.find(
      (o) => o?.kind === "Service" && o.metadata.name === "so-sandbox-operator-policy",
    ) as k8s.V1Service | undefined;
    const channelOn = !args.includes("policyChannel.enabled=false");
    expect(!!policyService).toBe(channelOn);
    expect(flags["policy-service"]).toBe(
      channelOn ? `${release.name}/so-sandbox-operator-policy` : undefined,
    );
    if (policyService) {
      const fixed = args.find((a) => a.startsWith("policyChannel.clusterIP="))?.split("=")[1];
      expect(policyService.spec?.clusterIP).toBe(fixed);
      const role = objects.find(
        (o) => o?.kind === "Role" && o.metadata.name === "so-sandbox-operator-policy",
      ) as k8s.V1Role;
      expect(role.rules).toEqual([
        {
          apiGroups: [""],
          resources: ["services"],
          resourceNames: ["so-sandbox-operator-policy"],
          verbs: ["get"],
        },
      ]);
    }
    if (args.includes("defaultBackend=docker")) {
      expect([...enabledBackends(flags)]).toContain("docker");
      expect(flags["docker-dns"]).toBe("10.0.0.2");
      // The root file system is read-only; docker snapshots spool their tar in /tmp.
      expect(container.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(container.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
      expect(deployment.spec!.template.spec!.volumes).toContainEqual({ name: "tmp", emptyDir: {} });
    }
    const gateway = objects.find(
      (o) => o?.kind === "Deployment" && o.spec.template.spec.containers[0].name === "gateway",
    ) as k8s.V1Deployment | undefined;
    // Off by default; one value turns it on.
    expect(!!gateway).toBe(args.includes("gateway.enabled=true"));
    if (gateway) {
      const pod = gateway.spec!.template.spec!;
      const c = pod.containers[0]!;
      const flags = parseGatewayFlags(c.args!.slice(1));
      expect(typeof flags === "string" ? flags : flags.domain).toBe("sbx.example.com");
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(c.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
      });
      expect(c.livenessProbe && c.readinessProbe).toBeTruthy();
      expect(gateway.spec!.template.metadata!.labels).toMatchObject({
        "sandboxing.dev/gateway": "true",
      });
      const pdbs = objects.filter((o) => o?.kind === "PodDisruptionBudget");
      expect(pdbs.map((p) => p.metadata.name)).toContain(gateway.metadata!.name);
      const role = objects.find(
        (o) => o?.kind === "ClusterRole" && o.metadata.name === gateway.metadata!.name,
      ) as k8s.V1ClusterRole;
      expect(role.rules!.map((r) => `${r.resources}:${r.verbs}`)).toEqual([
        "tokenreviews:create",
        "subjectaccessreviews:create",
        "sandboxes:get,list,watch",
        // the logs route on the pod backend (docs/gateway.md): read-only, no exec or port-forward
        "pods/log:get",
        // resume on use (docs/idle.md)
        "sandboxes:patch",
      ]);
      // The controller fences agents to this namespace's gateway Pods; both read the agent key.
      expect(parseControllerFlags(container.args!.slice(1))).toMatchObject({
        "gateway-namespace": release.name,
        "agent-key-file": "/etc/sandbox-operator/agent-key/agent.key",
      });
      const gwFlags = parseGatewayFlags(c.args!.slice(1));
      expect(typeof gwFlags === "string" ? gwFlags : gwFlags["agent-key-file"]).toBe(
        "/etc/sandbox-gateway/agent-key/agent.key",
      );
      const agentKey = objects.find(
        (o) => o?.kind === "Secret" && o.metadata.name.endsWith("-agent-key"),
      );
      expect(Buffer.from(agentKey.data["agent.key"], "base64").length).toBeGreaterThanOrEqual(32);
      for (const p of [pod, deployment.spec!.template.spec!])
        expect(p.volumes).toContainEqual(
          expect.objectContaining({
            name: "agent-key",
            secret: expect.objectContaining({ secretName: agentKey.metadata.name }),
          }),
        );
      const secret = objects.find((o) => o?.kind === "Secret" && o.metadata.name.endsWith("-keys"));
      const { loadKeysFromPem } = await import("../../src/gateway/keys.js");
      expect(
        loadKeysFromPem(Buffer.from(secret.data["signing.key"], "base64").toString()).kid,
      ).toMatch(/^[A-Za-z0-9_-]{16}$/);
    }
    for (const kind of [
      "serviceaccount",
      "deployment.apps",
      "poddisruptionbudget.policy",
      "validatingadmissionpolicy",
    ]) {
      expect(out).toContain(kind);
    }
  });

  it("installs, and its Deployment becomes available", { timeout: 120_000 }, async () => {
    await helm(
      "install",
      "so",
      CHART,
      "-n",
      release.name,
      "--set",
      `watchNamespaces={${sandboxes.name}}`,
      "--wait",
      "--timeout",
      "60s",
    );
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({
      name: "so-sandbox-operator",
      namespace: release.name,
    });
    expect(deployment.status?.availableReplicas).toBe(2);
    const container = deployment.spec?.template.spec?.containers[0];
    expect(container?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
  });

  describe("as the chart's ServiceAccount", () => {
    let sa: k8s.KubeConfig;

    beforeAll(async () => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const token = await core.createNamespacedServiceAccountToken({
        name: "so-sandbox-operator",
        namespace: release.name,
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      });
      const path = join(scratch, "service-account.kubeconfig");
      const cluster = kc.getCurrentCluster()!;
      writeFileSync(
        path,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [
            {
              name: "c",
              cluster: { server: cluster.server, "certificate-authority-data": cluster.caData },
            },
          ],
          users: [{ name: "sa", user: { token: token.status?.token } }],
          contexts: [{ name: "c", context: { cluster: "c", user: "sa" } }],
          "current-context": "c",
        }),
      );
      sa = new k8s.KubeConfig();
      sa.loadFromFile(path);
      operator = await startOperatorWithKubeconfig(path, {
        namespace: sandboxes.name,
        leaderElection: { namespace: release.name, name: "so-sandbox-operator" },
      });
    });

    it("reconciles a Sandbox end to end (the RBAC is sufficient)", async () => {
      const sbx = new SandboxClient(kc, sandboxes.name);
      await sbx.create("rbac", {
        image: "busybox",
        ports: [{ name: "http", port: 80 }],
        lifetime: { ttlSeconds: 600 },
      });
      await sbx.waitFor("rbac", isReady);
      expect(operator?.isLeader()).toBe(true);
      // Events too: recording never fails a reconcile, so check they were written.
      await eventually(async () => {
        expect((await sbx.events("rbac")).map((e) => e.reason)).toContain("Running");
      });
    });

    it("reads the policy endpoint from the chart's Service: the address the cluster assigned, the name its certificate carries", async () => {
      const assigned = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedService({ name: "so-sandbox-operator-policy", namespace: release.name });
      expect(assigned.spec?.clusterIP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const endpoint = await readServiceEndpoint(sa, {
        namespace: release.name,
        name: "so-sandbox-operator-policy",
      });
      expect(endpoint).toEqual({
        host: assigned.spec?.clusterIP,
        port: 15090,
        serverName: `so-sandbox-operator-policy.${release.name}.svc`,
      });
      // The chart's certificate names the Service, and its CA signed it.
      const secret = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedSecret({ name: "so-sandbox-operator-policy", namespace: release.name });
      const pem = (k: string) => Buffer.from(secret.data![k]!, "base64").toString();
      const cert = new X509Certificate(pem("tls.crt"));
      expect(cert.checkHost(endpoint.serverName)).toBe(endpoint.serverName);
      expect(cert.verify(new X509Certificate(pem("ca.crt")).publicKey)).toBe(true);
      // No other Service is readable to it in the release's namespace.
      await expect(
        sa.makeApiClient(k8s.CoreV1Api).readNamespacedService({
          name: "so-sandbox-operator-metrics",
          namespace: release.name,
        }),
      ).rejects.toMatchObject({ code: 403 });
    });

    it("cannot list Secrets, here or cluster-wide (it reads only the agent Secrets it names)", async () => {
      const core = sa.makeApiClient(k8s.CoreV1Api);
      // The sandbox's agent credential was created (and is this sandbox's).
      const agent = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedSecret({ name: "rbac-sandbox-agent", namespace: sandboxes.name });
      expect(agent.metadata?.ownerReferences?.[0]?.name).toBe("rbac");
      await expect(core.listNamespacedSecret({ namespace: sandboxes.name })).rejects.toMatchObject({
        code: 403,
      });
      await expect(core.listSecretForAllNamespaces()).rejects.toMatchObject({ code: 403 });
    });

    it("cannot touch kinds it does not manage", async () => {
      const core = sa.makeApiClient(k8s.CoreV1Api);
      const apps = sa.makeApiClient(k8s.AppsV1Api);
      await expect(
        core.createNamespacedConfigMap({
          namespace: sandboxes.name,
          body: { metadata: { name: "x" } },
        }),
      ).rejects.toMatchObject({ code: 403 });
      await expect(
        apps.listNamespacedDeployment({ namespace: sandboxes.name }),
      ).rejects.toMatchObject({ code: 403 });
      // Pods outside the namespaces it watches.
      await expect(core.listNamespacedPod({ namespace: "default" })).rejects.toMatchObject({
        code: 403,
      });
    });

    it("cannot create or delete Pods that are not its own (admission policy)", async () => {
      const core = sa.makeApiClient(k8s.CoreV1Api);
      const pod = {
        metadata: { name: "foreign" },
        spec: { containers: [{ name: "c", image: "busybox" }] },
      };
      // The apiserver loads admission policies from its own informer, so a
      // policy is enforced a moment after it is created; wait for that with
      // dry-run creates (admission runs, nothing is stored).
      await eventually(
        async () => {
          const denied = await core
            .createNamespacedPod({ namespace: sandboxes.name, body: pod, dryRun: "All" })
            .catch((e) => e);
          expect(denied.code).toBe(403);
        },
        { timeout: 30_000 },
      );
      const denied = await core
        .createNamespacedPod({ namespace: sandboxes.name, body: pod })
        .catch((e) => e);
      expect(denied.code).toBe(403);
      expect(String(denied.body)).toContain("may only change objects labelled");
      const admin = kc.makeApiClient(k8s.CoreV1Api);
      await admin.createNamespacedPod({ namespace: sandboxes.name, body: pod });
      const deleted = await core
        .deleteNamespacedPod({ namespace: sandboxes.name, name: "foreign" })
        .catch((e) => e);
      expect(deleted.code).toBe(403);
    });

    it("takes back an unlabelled Pod and NetworkPolicy, then removes them at expiry (RBAC and admission policy allow it)", async () => {
      const sbx = new SandboxClient(kc, sandboxes.name);
      await sbx.create("relabel", {
        image: "busybox",
        lifetime: { ttlSeconds: 12, onExpire: "Retain" },
      });
      await sbx.waitFor("relabel", isReady);
      const strip = { metadata: { labels: null } };
      const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
      const namespace = sandboxes.name;
      await sbx.core.patchNamespacedPod({ name: "relabel", namespace, body: strip }, merge);
      await sbx.networking.patchNamespacedNetworkPolicy(
        { name: "relabel", namespace, body: strip },
        merge,
      );
      await eventually(async () => {
        const pod = await sbx.pod("relabel");
        expect(pod?.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("sandbox-operator");
        const np = await sbx.networking.readNamespacedNetworkPolicy({ name: "relabel", namespace });
        expect(np.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("sandbox-operator");
      });
      await sbx.waitFor("relabel", (s) => expect(s.status?.phase).toBe("Expired"), 20_000);
      await eventually(async () => expect(await sbx.pod("relabel")).toBeUndefined());
    });
  });
});
