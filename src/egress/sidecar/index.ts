// The egress sidecar: DNS proxy, explicit HTTP proxy, transparent Host/SNI
// proxies, one decision log line per connection, policy reload.
export type { DecisionEvent, EgressProtocol } from "./decisions.js";
export {
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_METRICS_LISTEN,
  DEFAULT_SIDECAR_PORTS,
  type EgressSidecarOptions,
  type SidecarPorts,
} from "./options.js";
export { type EgressSidecar, runEgressSidecar } from "./run.js";
export { type ClientHelloResult, parseClientHello } from "./tls/client-hello.js";
