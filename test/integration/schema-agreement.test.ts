// The CRD and the controller's schemas must agree: whatever the apiserver
// admits, spec or status, the controller can read (or a status it cannot read
// would stop a sandbox expiring, and a spec it cannot read would be reported
// as invalid although admitted). Edge cases of every field go to both; each
// case also says what the apiserver must do with it, so the test cannot pass
// by the apiserver refusing everything.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { API_VERSION, GROUP, SANDBOX_KIND, SANDBOX_PLURAL, VERSION } from "../../src/api/group.js";
import { SandboxSpecSchema } from "../../src/api/sandbox-spec.js";
import { SandboxStatusSchema } from "../../src/api/sandbox-status.js";
import { readStatus } from "../../src/sandbox/read.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import { REPO_ROOT } from "../support/paths.js";

const kc = kubeConfig();
const objects = kc.makeApiClient(k8s.CustomObjectsApi);
let ns: Awaited<ReturnType<typeof testNamespace>>;
const ref = () => ({ group: GROUP, version: VERSION, namespace: ns.name, plural: SANDBOX_PLURAL });

beforeAll(async () => {
  ns = await testNamespace(kc, "schemas");
});
afterAll(async () => {
  await ns?.delete();
});

type Verdict = "accept" | "refuse";
/** [field, value as JSON text (exact: int64 does not fit a JS number), what the apiserver does]. */
type Case = [field: string, json: string, apiserver: Verdict];

const T = (s: string) => JSON.stringify(s);
const INT64_MAX = "9223372036854775807";
const SAFE_MAX = String(Number.MAX_SAFE_INTEGER);

/** Spec fields; `field` is a dotted path under spec. */
const specCases: Case[] = [
  ["lifetime.expiresAt", T("2030-01-01T00:00:00Z"), "accept"],
  // RFC 3339 allows lower case, and so does the date-time format, but a CEL rule
  // on the enclosing object (lifetime's "exactly one of") reads the field as a
  // timestamp with Go's upper-case layout, so the apiserver refuses it here.
  ["lifetime.expiresAt", T("2030-01-01t00:00:00z"), "refuse"],
  ["lifetime.expiresAt", T("2030-01-01T00:00:00.123456789+05:30"), "accept"],
  ["lifetime.expiresAt", T("2032-02-29T23:59:59-23:59"), "accept"],
  ["lifetime.expiresAt", T("2030-01-01T00:00:00x5Z"), "refuse"],
  ["lifetime.expiresAt", T("2030-01-01T00:00:00Zt0"), "refuse"],
  ["lifetime.expiresAt", T("2030-02-30T00:00:00Z"), "refuse"],
  ["lifetime.expiresAt", T("2030-01-01T00:00:00"), "refuse"],
  ["lifetime.ttlSeconds", "1", "accept"],
  ["lifetime.ttlSeconds", "31622400", "accept"],
  ["lifetime.ttlSeconds", "0", "refuse"],
  ["resources.cpu", "1", "accept"],
  ["resources.cpu", T("1m"), "accept"],
  ["resources.cpu", T("1e3"), "accept"],
  ["resources.cpu", T("0"), "refuse"],
  ["resources.memory", T("4Mi"), "accept"],
  ["resources.memory", "4194304", "accept"],
  ["resources.pids", "16", "accept"],
  ["resources.pids", "1048576", "accept"],
  ["security.runAsUser", "0", "accept"],
  ["security.runAsUser", "2147483647", "accept"],
  ["security.runAsUser", "1337", "refuse"],
  ["security.runAsGroup", "0", "accept"],
  ["security.runtimeClassName", T("a.b-c"), "accept"],
  ["workingDir", T("/"), "accept"],
  ["ports", JSON.stringify([{ name: "a23456789012345", port: 65535 }]), "accept"],
  ["ports", JSON.stringify([{ name: "h", port: 1 }]), "accept"],
  ["env", JSON.stringify([{ name: "_A.b-c", value: "" }]), "accept"],
  [
    "env",
    JSON.stringify([{ name: "T", valueFrom: { secretKeyRef: { name: "s.x", key: "_.-" } } }]),
    "accept",
  ],
  [
    "network.egress.rules",
    JSON.stringify([
      { action: "allow", target: "*.EXAMPLE.com.", ports: [1, 65535] },
      { action: "deny", target: "2001:db8::/32" },
      { action: "allow", target: "192.0.2.1" },
      { action: "allow", target: "::1" },
    ]),
    "accept",
  ],
  ["network.egress.defaultAction", T("allow"), "accept"],
  ["command", JSON.stringify([""]), "accept"],
];

/** A condition as JSON text, with fields replaced by JSON texts (int64 stays digit for digit). */
const condition = (over: Record<string, string>) => {
  const fields: Record<string, string> = {
    type: T("Ready"),
    status: T("True"),
    reason: T("R"),
    message: T(""),
    lastTransitionTime: T("2024-01-01T00:00:00Z"),
    ...over,
  };
  return `[{${Object.entries(fields)
    .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
    .join(",")}}]`;
};

/** Status fields, written through the status subresource. */
const statusCases: Case[] = [
  ...["Pending", "Running", "Succeeded", "Failed", "Expired"].map(
    (p): Case => ["phase", T(p), "accept"],
  ),
  ["phase", T("Terminating"), "refuse"],
  ...["startedAt", "expiresAt", "finishedAt"].flatMap((f): Case[] => [
    [f, T("2024-01-01t00:00:00z"), "accept"],
    [f, T("2024-01-01T00:00:00.5+01:00"), "accept"],
    [f, T("2024-01-01T00:00:00x5Z"), "refuse"],
    [f, T("2024-01-01"), "refuse"],
  ]),
  ["observedGeneration", "0", "accept"],
  ["observedGeneration", SAFE_MAX, "accept"],
  ["observedGeneration", INT64_MAX, "refuse"],
  ["conditions", condition({}), "accept"],
  ["conditions", condition({ type: T("example.com/Custom_v1.x") }), "accept"],
  ["conditions", condition({ reason: T("A,b:c_9") }), "accept"],
  ["conditions", condition({ status: T("Unknown") }), "accept"],
  ["conditions", condition({ lastTransitionTime: T("2024-01-01t00:00:00.999999z") }), "accept"],
  ["conditions", condition({ observedGeneration: SAFE_MAX }), "accept"],
  ["conditions", condition({ observedGeneration: INT64_MAX }), "refuse"],
  ["conditions", condition({ lastTransitionTime: T("2024-01-01T00:00:00x5Z") }), "refuse"],
  ["exitCode", "-2147483648", "accept"],
  ["exitCode", "2147483647", "accept"],
  ["backend", T("docker"), "accept"],
  ["podName", T(""), "accept"],
  ["containerId", T("a".repeat(128)), "accept"],
  ["ip", T("fe80::1%eth0"), "accept"],
  ["endpoints", JSON.stringify([{ name: "a23456789012345", port: 1, host: "" }]), "accept"],
  ["endpoints", JSON.stringify([{ name: "h", port: 65535, host: "h", url: "x" }]), "accept"],
  ["reason", T(""), "accept"],
  ["message", T("x".repeat(32768)), "accept"],
];

/** Sends JSON text as is: int64 values must reach the apiserver digit for digit. */
async function send(method: "POST" | "PATCH", path: string, body: string, contentType: string) {
  const cluster = kc.getCurrentCluster()!;
  const ctx = new k8s.RequestContext(cluster.server + path, k8s.HttpMethod[method]);
  await kc.applySecurityAuthentication(ctx);
  const res = await fetch(cluster.server + path, {
    method,
    headers: { ...ctx.getHeaders(), "content-type": contentType },
    body,
    dispatcher: ctx.getDispatcher(),
  });
  return { status: res.status, body: await res.text() };
}

/** `{"a":{"b":<json>}}` for the path "a.b". */
function nest(path: string, json: string, inner = ""): string {
  const keys = path.split(".");
  return keys.reduceRight((acc, k, i) => {
    const extra = i === 0 && inner ? `,${inner}` : "";
    return `{${JSON.stringify(k)}:${acc}${extra}}`;
  }, json);
}

const collection = () => `/apis/${GROUP}/${VERSION}/namespaces/${ns.name}/${SANDBOX_PLURAL}`;
let seq = 0;

describe("the controller reads whatever the CRD admits", () => {
  it.each(specCases)("spec.%s = %s: apiserver %s", async (field, json, verdict) => {
    const name = `spec-${seq++}`;
    // image (required) next to the field, unless the field is under it.
    const spec = nest(field, json, `"image":"busybox"`);
    const body = `{"apiVersion":"${API_VERSION}","kind":"${SANDBOX_KIND}","metadata":{"name":"${name}"},"spec":${spec}}`;
    const res = await send("POST", collection(), body, "application/json");
    expect(res.status < 300 ? "accept" : "refuse", res.body).toBe(verdict);
    if (verdict === "refuse") return;
    const stored = JSON.parse(res.body) as { spec: unknown };
    const parsed = SandboxSpecSchema.safeParse(stored.spec);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
  });

  it.each(statusCases)("status.%s = %s: apiserver %s", async (field, json, verdict) => {
    const name = `status-${seq++}`;
    await objects.createNamespacedCustomObject({
      ...ref(),
      body: {
        apiVersion: API_VERSION,
        kind: SANDBOX_KIND,
        metadata: { name },
        spec: { image: "busybox" },
      },
    });
    const res = await send(
      "PATCH",
      `${collection()}/${name}/status`,
      `{"status":${nest(field, json)}}`,
      "application/merge-patch+json",
    );
    expect(res.status < 300 ? "accept" : "refuse", res.body).toBe(verdict);
    if (verdict === "refuse") return;
    const stored = JSON.parse(res.body) as { status: Record<string, unknown> };
    expect(stored.status[field.split(".")[0]!]).toBeDefined();
    const parsed = SandboxStatusSchema.safeParse(stored.status);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    // And the reconciler's reader keeps every field.
    expect(Object.keys(readStatus(stored.status) ?? {}).sort()).toEqual(
      Object.keys(stored.status).sort(),
    );
  });

  it("reads every sandbox of the admission corpus's valid cases", () => {
    const valid = parse(
      readFileSync(join(REPO_ROOT, "test/admission/corpus/valid.yaml"), "utf8"),
    ) as Array<{ name: string; spec: unknown }>;
    expect(valid.length).toBeGreaterThan(0);
    for (const c of valid) {
      expect(SandboxSpecSchema.safeParse(c.spec).success, c.name).toBe(true);
    }
  });
});
