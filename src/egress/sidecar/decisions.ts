// One structured log line and one counter increment per egress decision, so
// every refusal can be traced to the sandbox, the target and the rule.

import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { DestinationDecision } from "../policy/index.js";

/** Where the decision was made: DNS query, explicit proxy, or a transparent listener. */
export type EgressProtocol = "dns" | "proxy-connect" | "proxy-http" | "http" | "tls";

export interface DecisionEvent {
  protocol: EgressProtocol;
  /** The name or address asked for ("<none>" when a request carried none). */
  target: string;
  port: number;
  decision: DestinationDecision;
  /** The address connected to (or refused), when there was one. */
  address?: string;
  /** Extra context for refusals that no rule made (no SNI, resolution failed). */
  reason?: string;
}

export interface DecisionRecorder {
  record(event: DecisionEvent): void;
}

export function decisionRecorder(
  sandboxId: string,
  logger: Logger,
  registry: Registry,
): DecisionRecorder {
  const decisions = new Counter({
    name: "sandbox_egress_decisions_total",
    help: "Egress decisions of the sidecar, by verdict and where they were made",
    labelNames: ["verdict", "protocol"] as const,
    registers: [registry],
  });
  const log = logger.child({ sandbox: sandboxId });
  return {
    record(e) {
      decisions.inc({ verdict: e.decision.verdict, protocol: e.protocol });
      const line = {
        protocol: e.protocol,
        target: e.target,
        port: e.port,
        rule: e.decision.rule,
        verdict: e.decision.verdict,
        ...(e.address !== undefined ? { address: e.address } : {}),
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
      };
      if (e.decision.verdict === "allow") log.info(line, "egress allowed");
      else log.warn(line, "egress denied");
    },
  };
}
