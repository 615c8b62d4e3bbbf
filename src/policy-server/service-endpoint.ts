// Where sandbox Pods reach the policy endpoint when the operator's chart
// fronts it with a Service whose ClusterIP the cluster assigns: read once at
// start-up. The Pods' lockdown names an address (it cannot resolve names), so
// the sidecar dials the ClusterIP and checks the certificate against the
// Service's DNS name, which is what the chart's certificate carries (the IP is
// not known when it is made). The address is read only at start: the chart
// keeps the Service across upgrades, and a Service deleted and re-created with
// another address needs the operator restarted (Pods built before keep their
// start-up policy file and lose the live channel).
import * as k8s from "@kubernetes/client-node";
import { Backoff, sleep } from "../controller/backoff.js";
import { classifyError, errorMessage } from "../controller/errors.js";

/** The policy Service's port is the one named so, or its only port. */
export const POLICY_PORT_NAME = "policy";

export interface ServiceRef {
  namespace: string;
  name: string;
}

export interface ServiceEndpoint {
  host: string;
  port: number;
  /** What the endpoint's certificate must name: the Service's in-cluster DNS name. */
  serverName: string;
}

/** "NAMESPACE/NAME" -> a reference; undefined when malformed. */
export function parseServiceRef(value: string): ServiceRef | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z]([-a-z0-9]*[a-z0-9])?)$/.exec(value);
  return m ? { namespace: m[1]!, name: m[3]! } : undefined;
}

/** The endpoint a Service offers, or why it offers none (a message for the operator's log). */
export function endpointOfService(
  ref: ServiceRef,
  svc: k8s.V1Service,
): ServiceEndpoint | { error: string } {
  const where = `Service ${ref.namespace}/${ref.name}`;
  const ip = svc.spec?.clusterIP;
  if (!ip || ip === "None")
    return { error: `${where} has no ClusterIP (a headless Service cannot front the endpoint)` };
  const ports = svc.spec?.ports ?? [];
  const port =
    ports.find((p) => p.name === POLICY_PORT_NAME) ?? (ports.length === 1 ? ports[0] : undefined);
  if (!port) return { error: `${where} has no port named "${POLICY_PORT_NAME}"` };
  return { host: ip, port: port.port, serverName: `${ref.name}.${ref.namespace}.svc` };
}

/**
 * Reads the Service, then its endpoint; throws with the reason. A missing
 * Service or a transient failure is retried for up to `waitMs` (an install
 * may start the operator before its Service exists); a Service without an
 * endpoint is not.
 */
export async function readServiceEndpoint(
  kc: k8s.KubeConfig,
  ref: ServiceRef,
  { waitMs = 30_000, signal }: { waitMs?: number; signal?: AbortSignal } = {},
): Promise<ServiceEndpoint> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const backoff = new Backoff({ baseMs: 200, maxMs: 5_000 });
  const deadline = Date.now() + waitMs;
  for (;;) {
    let svc: k8s.V1Service;
    try {
      svc = await core.readNamespacedService({ name: ref.name, namespace: ref.namespace });
    } catch (err) {
      const kind = classifyError(err);
      if (
        (kind !== "transient" && kind !== "notFound") ||
        Date.now() >= deadline ||
        signal?.aborted
      )
        throw new Error(
          `reading the policy Service ${ref.namespace}/${ref.name}: ${errorMessage(err)}`,
          { cause: err },
        );
      await sleep(backoff.next(), signal);
      continue;
    }
    const endpoint = endpointOfService(ref, svc);
    if ("error" in endpoint) throw new Error(endpoint.error);
    return endpoint;
  }
}
