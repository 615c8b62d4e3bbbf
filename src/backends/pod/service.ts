// A ClusterIP Service for the ports a sandbox declares; each port becomes an
// entry of status.endpoints.
import type { V1Service } from "@kubernetes/client-node";
import type { Sandbox } from "../../api/sandbox.js";
import type { Endpoint } from "../../api/sandbox-status.js";
import { objectMeta, selectorLabels } from "./metadata.js";

/** undefined when the sandbox declares no ports (and so needs no Service). */
export function desiredService(sandbox: Sandbox): V1Service | undefined {
  const ports = sandbox.spec.ports;
  if (!ports?.length) return undefined;
  const spec = {
    type: "ClusterIP",
    selector: selectorLabels(sandbox),
    ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.port, protocol: "TCP" })),
  };
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: objectMeta(sandbox, "service", spec),
    spec,
  };
}

/** Endpoints by cluster DNS name, stable for the Service's lifetime. */
export function serviceEndpoints(sandbox: Sandbox): Endpoint[] {
  const host = `${sandbox.metadata.name}.${sandbox.metadata.namespace}.svc`;
  return (sandbox.spec.ports ?? []).map((p) => ({
    name: p.name,
    port: p.port,
    host,
    ...urlFor(p.name, host, p.port),
  }));
}

/** A URL only where the port's name says its scheme (IANA names "http", "https", "http-*"). */
function urlFor(name: string, host: string, port: number): { url?: string } {
  const scheme = /^(https?)(-|$)/.exec(name)?.[1];
  return scheme ? { url: `${scheme}://${host}:${port}` } : {};
}
