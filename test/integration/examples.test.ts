// Every manifest in examples/ as a reader would use it: `kubectl apply -f` against
// the real apiserver, read back with the schema's defaults applied, and — for the
// pod backend — reconciled by the real controller to what the example's comments
// promise. An example nobody checks here fails the test.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { ConditionReason, ConditionType } from "../../src/api/conditions.js";
import { API_VERSION, SANDBOX_KIND } from "../../src/api/group.js";
import { Labels } from "../../src/api/labels.js";
import { type SandboxSpecInput, SandboxSpecSchema } from "../../src/api/sandbox-spec.js";
import { POLICY_ANNOTATION } from "../../src/backends/pod/egress.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { eventually } from "../support/eventually.js";
import { type RunningOperator, startOperator } from "../support/operator.js";
import { REPO_ROOT } from "../support/paths.js";
import {
  condition,
  isReady,
  notFound,
  SandboxClient,
  type StoredSandbox,
} from "../support/sandboxes.js";

const EXAMPLES_DIR = join(REPO_ROOT, "examples");

interface Example {
  file: string;
  name: string;
  spec: SandboxSpecInput;
}

/** Every file in examples/, parsed: one Sandbox per file. */
function loadExamples(): Example[] {
  return readdirSync(EXAMPLES_DIR)
    .sort()
    .map((file) => {
      const docs = parseAllDocuments(readFileSync(join(EXAMPLES_DIR, file), "utf8"));
      expect(docs, `${file}: one YAML document`).toHaveLength(1);
      const doc = docs[0]!;
      expect(doc.errors, `${file}: YAML errors`).toEqual([]);
      const manifest = doc.toJS() as {
        apiVersion: string;
        kind: string;
        metadata: { name: string; namespace?: string };
        spec: SandboxSpecInput;
      };
      expect(manifest.apiVersion, file).toBe(API_VERSION);
      expect(manifest.kind, file).toBe(SANDBOX_KIND);
      // A namespace in the file would send `kubectl apply -n` elsewhere (or fail).
      expect(manifest.metadata.namespace, `${file}: no namespace`).toBeUndefined();
      return { file, name: manifest.metadata.name, spec: manifest.spec };
    });
}

const examples = loadExamples();

const kc = kubeConfig();
let ns: Awaited<ReturnType<typeof testNamespace>>;
let readmeNs: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let operator: RunningOperator;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    join(inject("k8sBinDir"), "kubectl"),
    ["--kubeconfig", inject("kubeconfigPath"), "--namespace", ns.name, ...args],
    { encoding: "utf8" },
  );
  return stdout;
}

beforeAll(async () => {
  ns = await testNamespace(kc, "examples");
  sbx = new SandboxClient(kc, ns.name);
  // Only the pod backend: docker-backend.yaml is checked for admission and defaults
  // here; running it belongs to test/docker/sandbox-docker.test.ts, against a real dockerd.
  operator = await startOperator({ namespace: ns.name, user: "operator-0" });
  readmeNs = await testNamespace(kc, "readme"); // no controller: admission only
});
afterAll(async () => {
  await operator?.stop();
  await ns?.delete();
  await readmeNs?.delete();
});

/**
 * What each example must come to once the controller has reconciled it. Adding a
 * file to examples/ without an entry here fails "covers every example".
 */
const reconciled: Record<string, (e: Example) => Promise<void>> = {
  "hello.yaml": async ({ name, spec }) => {
    const s = await sbx.waitFor(name, (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    });
    expect(s.status).toMatchObject({ backend: "pod", podName: name, observedGeneration: 1 });
    const pod = (await sbx.pod(name))!;
    const workload = pod.spec?.containers.find((c) => c.name === "sandbox");
    expect(workload).toMatchObject({ image: spec.image, command: spec.command });
  },

  "web-server-with-port.yaml": async ({ name, spec }) => {
    const s = await sbx.waitFor(name, (s) => {
      isReady(s);
      expect(s.status?.endpoints?.length).toBeGreaterThan(0);
    });
    expect(s.status?.endpoints).toEqual(
      spec.ports!.map((p) => ({
        name: p.name,
        port: p.port,
        host: `${name}.${ns.name}.svc`,
        url: `http://${name}.${ns.name}.svc:${p.port}`,
      })),
    );
    const svc = await sbx.core.readNamespacedService({ name, namespace: ns.name });
    expect(svc.spec?.selector?.[Labels.sandboxUid]).toBe(s.metadata.uid);
    expect(svc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort])).toEqual(
      spec.ports!.map((p) => [p.name, p.port, p.port]),
    );
    const np = await sbx.networking.readNamespacedNetworkPolicy({ name, namespace: ns.name });
    expect(np.spec?.ingress?.[0]?.ports?.map((p) => p.port)).toEqual(
      spec.ports!.map((p) => p.port),
    );
    const pod = (await sbx.pod(name))!;
    expect(pod.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(
      spec.security?.readOnlyRootFilesystem,
    );
  },

  "python-with-pypi-egress.yaml": async ({ name, spec }) => {
    const s = await sbx.waitFor(name, isReady);
    expect(condition(s, ConditionType.EgressReady)).toMatchObject({
      status: "True",
      reason: ConditionReason.EgressEnforced,
    });
    const policy = spec.network!.egress!;
    const targets = policy.rules!.map((r) => r.target);
    expect(targets).toEqual(["pypi.org", "files.pythonhosted.org"]);
    const pod = (await sbx.pod(name))!;
    // The policy the sidecar enforces, exactly as the example states it.
    expect(JSON.parse(pod.metadata!.annotations![POLICY_ANNOTATION]!)).toEqual({
      defaultAction: "deny",
      rules: policy.rules,
    });
    // The firewall first, then the native sidecar that reads the annotation,
    // then the in-sandbox agent's copy.
    expect(pod.spec?.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
      ["egress-init", undefined],
      ["egress", "Always"],
      ["sandbox-agent-install", undefined],
    ]);
    const sidecar = pod.spec!.initContainers![1]!;
    expect(sidecar.args).toContain(`--sandbox=${ns.name}/${name}`);
    const policyFile = pod.spec?.volumes?.find((v) => v.name === "egress-policy");
    expect(policyFile?.downwardAPI?.items?.[0]?.fieldRef?.fieldPath).toBe(
      `metadata.annotations['${POLICY_ANNOTATION}']`,
    );
    // pip and requests find the sidecar through the proxy variables.
    const env = pod.spec!.containers[0]!.env!;
    expect(env).toContainEqual({ name: "HTTPS_PROXY", value: "http://127.0.0.1:15001" });
    expect(env).toContainEqual({ name: "HOME", value: "/workspace" });
    // Name rules need public addresses at the NetworkPolicy, never private ones.
    const np = await sbx.networking.readNamespacedNetworkPolicy({ name, namespace: ns.name });
    const publicRule = np.spec?.egress?.find((r) => r.to?.[0]?.ipBlock?.cidr === "0.0.0.0/0");
    expect(publicRule?.to?.[0]?.ipBlock?.except).toContain("169.254.0.0/16");
  },

  "retained-after-expiry.yaml": async ({ name, spec }) => {
    expect(spec.lifetime?.onExpire).toBe("Retain");
    const running = await sbx.waitFor(name, (s) => {
      isReady(s);
      expect(s.status?.phase).toBe("Running");
    });
    // Fast-forward: the example's lifetime is minutes; a 1-second ttl counted from
    // creation has already run out. Renewal works the same way in the other direction.
    await sbx.patchSpec(name, { lifetime: { ttlSeconds: 1 } });
    const expired = await sbx.waitFor(name, (s) => expect(s.status?.phase).toBe("Expired"));
    expect(expired.metadata.uid).toBe(running.metadata.uid);
    expect(expired.spec.lifetime?.onExpire).toBe("Retain"); // the merge patch kept it
    expect(condition(expired, ConditionType.Expired)).toMatchObject({
      status: "True",
      reason: ConditionReason.LifetimeElapsed,
    });
    expect(condition(expired, ConditionType.Ready)?.status).toBe("False");
    expect(expired.status?.finishedAt).toBeDefined();
    await eventually(async () => {
      expect(await sbx.pod(name)).toBeUndefined();
      const np = await sbx.networking
        .readNamespacedNetworkPolicy({ name, namespace: ns.name })
        .catch(notFound);
      expect(np).toBeUndefined();
    });
    // The workload is gone and the record stays.
    expect((await sbx.get(name))?.status?.phase).toBe("Expired");
    await eventually(async () =>
      expect((await sbx.events(name)).map((e) => e.reason)).toContain("Expired"),
    );
  },

  // Admission and defaults only (below): running it needs the docker backend,
  // which test/docker/sandbox-docker.test.ts exercises against a real dockerd.
  "docker-backend.yaml": async ({ spec }) => {
    expect(spec.backend).toBe("docker");
    expect(spec.image).toBe("sandbox-operator/sandbox-basic:latest");
  },
};

describe("examples/", () => {
  it("covers every example, each a Sandbox with a name of its own", () => {
    expect(examples.map((e) => e.file)).toEqual(Object.keys(reconciled).sort());
    for (const e of examples) expect(e.file, e.file).toMatch(/\.yaml$/);
    const names = examples.map((e) => e.name);
    expect(new Set(names).size, names.join(", ")).toBe(names.length);
  });

  it.each(examples.map((e) => [e.file, e] as const))(
    "%s: kubectl apply accepts it and it reads back with defaults",
    async (file, e) => {
      const out = await kubectl("apply", "-f", join(EXAMPLES_DIR, file));
      expect(out.trim()).toBe(`sandbox.sandboxing.dev/${e.name} created`);
      const stored = (await sbx.get(e.name)) as StoredSandbox;
      // The apiserver's defaulting (from the CRD generated from src/api) agrees
      // with the API's own: what the file omits is filled in, what it says stays.
      expect(stored.spec).toEqual(SandboxSpecSchema.parse(e.spec));
      expect(stored.spec).toMatchObject(e.spec as Record<string, unknown>);
      expect(stored.spec.lifetime?.onExpire).toBeDefined();
      expect(stored.spec.network?.egress?.defaultAction).toBe(
        e.spec.network?.egress?.defaultAction ?? "deny",
      );
      // Applying it again is a no-op, as a reader re-running the command expects.
      expect((await kubectl("apply", "-f", join(EXAMPLES_DIR, file))).trim()).toBe(
        `sandbox.sandboxing.dev/${e.name} unchanged`,
      );
    },
  );

  it.each(examples.map((e) => [e.file, e] as const))(
    "%s: reconciles to what its comments promise",
    async (file, e) => {
      const check = reconciled[file];
      expect(check, `no expectation for examples/${file}`).toBeDefined();
      await check!(e);
    },
  );
});

// The README's YAML is API too: a reader copies it. Its complete Sandbox and every
// `spec.network` snippet must pass admission and read back as the API defaults it.
describe("README", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map(
    (m) => parse(m[1]!) as Record<string, unknown>,
  );
  const sandboxes = blocks.filter((b) => b.kind === SANDBOX_KIND);
  const policies = blocks.filter((b) => "network" in b);

  it("has a complete Sandbox and egress policy examples", () => {
    expect(sandboxes.length).toBeGreaterThanOrEqual(1);
    expect(policies.length).toBeGreaterThanOrEqual(5);
  });

  it("shows a complete Sandbox the apiserver accepts", async () => {
    const client = new SandboxClient(kc, readmeNs.name);
    for (const [i, s] of sandboxes.entries()) {
      const spec = s.spec as SandboxSpecInput;
      await client.create(`readme-sandbox-${i}`, spec);
      const stored = await client.get(`readme-sandbox-${i}`);
      expect(stored?.spec).toEqual(SandboxSpecSchema.parse(spec));
    }
  });

  it("shows egress policies the apiserver accepts", async () => {
    const client = new SandboxClient(kc, readmeNs.name);
    for (const [i, p] of policies.entries()) {
      const spec = { image: "busybox", network: p.network } as SandboxSpecInput;
      await client.create(`readme-policy-${i}`, spec);
      const stored = await client.get(`readme-policy-${i}`);
      expect(stored?.spec.network, JSON.stringify(p)).toEqual(
        SandboxSpecSchema.parse(spec).network,
      );
    }
  });

  it("quotes the apiserver's message for a bad egress target", async () => {
    const quoted = /`(target 1\.2\.3\.999 is not a DNS name[^`]*)`/.exec(readme)?.[1];
    expect(quoted, "the quoted message").toBeDefined();
    const client = new SandboxClient(kc, readmeNs.name);
    const err = await client
      .create("readme-bad-target", {
        image: "busybox",
        network: { egress: { rules: [{ action: "allow", target: "1.2.3.999" }] } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err, "the apiserver accepted it").toBeInstanceOf(k8s.ApiException);
    const body = (err as k8s.ApiException<unknown>).body;
    const status = (typeof body === "string" ? JSON.parse(body) : body) as { message: string };
    expect(status.message).toContain(quoted);
  });
});
