// The burst's same-run baseline: how long this machine's apiserver takes for
// the writes a burst of N warm claims cannot do without, with no controller
// logic, no container daemon and no watch in between. Per claim, in order,
// the N chains at once: the claim's create (the client's), the binding's
// patch of a Sandbox, that Sandbox's status write, the claim's status write.
// The objects live in a namespace no controller watches; the Sandboxes are
// made beforehand (a pool's stock), outside the timing. Run with the
// operator's client (its rate limit: what the operator itself could reach)
// and without any client-side limit (the apiserver's own floor).
import * as k8s from "@kubernetes/client-node";
import {
  API_VERSION,
  CLAIM_KIND,
  CLAIM_PLURAL,
  GROUP,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  VERSION,
} from "../../src/api/group.js";
import { rawRequest, resourcePath } from "../../src/controller/raw-request.js";
import { percentile } from "../support/stats.js";

const merge = "application/merge-patch+json";

export interface FloorResult {
  /** Writes per claim (the client's create included). */
  writesPerClaim: number;
  /** Client-side create -> the claim's last write acknowledged, per claim (ms). */
  claimMs: { p50: number; p90: number; p99: number; max: number };
  allMs: number;
}

/**
 * Runs the chains twice in a fresh namespace: with `limited` (the operator's
 * KubeConfig, its token bucket) and `unlimited` for the three controller-side
 * writes; `client` makes the claims, as in the burst.
 */
export async function apiserverFloor(opts: {
  client: k8s.KubeConfig;
  limited: k8s.KubeConfig;
  unlimited: k8s.KubeConfig;
  claims: number;
  sandboxSpec: Record<string, unknown>;
  namespace: string;
}): Promise<{ operatorClient: FloorResult; unlimitedClient: FloorResult }> {
  const core = opts.client.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: opts.namespace } } });
  // Left in place: deleting it would delete its objects while the burst runs
  // (it did in the first run of 300, bench/results/pools-burst.md); the
  // benchmark's control plane goes with everything in it.
  const operatorClient = await floorRun(opts, opts.limited, "a");
  const unlimitedClient = await floorRun(opts, opts.unlimited, "b");
  return { operatorClient, unlimitedClient };
}

async function floorRun(
  opts: Parameters<typeof apiserverFloor>[0],
  controller: k8s.KubeConfig,
  prefix: string,
): Promise<FloorResult> {
  const ns = opts.namespace;
  const sandboxes = { group: GROUP, version: VERSION, plural: SANDBOX_PLURAL };
  const claims = { group: GROUP, version: VERSION, plural: CLAIM_PLURAL };
  const names = Array.from({ length: opts.claims }, (_, i) => `${prefix}${i}`);
  // The pool's stock: not timed (a few at a time, so it does not take long).
  for (let i = 0; i < names.length; i += 20)
    await Promise.all(
      names.slice(i, i + 20).map((name) =>
        rawRequest(opts.client, "POST", resourcePath(sandboxes, ns), {
          body: {
            apiVersion: API_VERSION,
            kind: SANDBOX_KIND,
            metadata: { name: `s-${name}`, namespace: ns, labels: { pool: "p" } },
            spec: opts.sandboxSpec,
          },
        }),
      ),
    );
  const t0 = performance.now();
  const times = await Promise.all(
    names.map(async (name) => {
      const start = performance.now();
      const claim = await rawRequest<{ metadata: { uid: string } }>(
        opts.client,
        "POST",
        resourcePath(claims, ns),
        {
          body: {
            apiVersion: API_VERSION,
            kind: CLAIM_KIND,
            metadata: { name, namespace: ns },
            spec: { templateRef: { name: "t" } },
          },
        },
      );
      const sandbox = `s-${name}`;
      await rawRequest(controller, "PATCH", resourcePath(sandboxes, ns, sandbox), {
        contentType: merge,
        body: {
          metadata: { labels: { pool: null, claim: name, "claim-uid": claim.metadata.uid } },
        },
      });
      await rawRequest(controller, "PATCH", resourcePath(sandboxes, ns, sandbox, "status"), {
        contentType: merge,
        body: { status: { phase: "Running", observedGeneration: 1 } },
      });
      await rawRequest(controller, "PATCH", resourcePath(claims, ns, name, "status"), {
        contentType: merge,
        body: { status: { phase: "Ready", sandboxName: sandbox, source: "Warm" } },
      });
      return performance.now() - start;
    }),
  );
  const allMs = performance.now() - t0;
  const r = (x: number) => Math.round(x);
  return {
    writesPerClaim: 4,
    claimMs: {
      p50: r(percentile(times, 50)),
      p90: r(percentile(times, 90)),
      p99: r(percentile(times, 99)),
      max: r(Math.max(...times)),
    },
    allMs: r(allMs),
  };
}
