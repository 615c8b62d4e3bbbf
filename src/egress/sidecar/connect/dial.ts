// Judge a destination and, if allowed, connect to it. For a name the sidecar
// resolves it itself and connects to an address the policy accepts for that
// name: never to whatever address the workload had in mind, so a connection to
// a denied IP that carries an allowed Host or SNI reaches the allowed name's own
// address. Every outcome is one recorded decision.
import { connect, type NetConnectOpts, type Socket } from "node:net";
import {
  type CidrSet,
  type CompiledPolicy,
  type DestinationDecision,
  decideName,
  judgeDestination,
  normalizeAddress,
  normalizeName,
} from "../../policy/index.js";
import type { DecisionRecorder, EgressProtocol } from "../decisions.js";
import { PROXY_HIGH_WATER_MARK } from "./buffering.js";
import type { NameResolver } from "./name-resolver.js";

export interface DialContext {
  policy(): CompiledPolicy;
  reserved: CidrSet;
  resolver: NameResolver;
  decisions: DecisionRecorder;
  connectTimeoutMs: number;
}

export type DialResult =
  | { ok: true; socket: Socket; address: string }
  | { ok: false; status: 403 | 502 | 504; message: string };

/** `host` is a name or an IP literal, as it arrived (Host, SNI, CONNECT authority). */
export async function dial(
  ctx: DialContext,
  protocol: EgressProtocol,
  host: string,
  port: number,
): Promise<DialResult> {
  const policy = ctx.policy();
  const literal = normalizeAddress(host);
  const name = literal ? undefined : normalizeName(host);
  const refuse = (decision: DestinationDecision, address?: string, reason?: string): DialResult => {
    ctx.decisions.record({
      protocol,
      target: name ?? literal!.address,
      port,
      decision,
      address,
      reason,
    });
    return {
      ok: false,
      status: 403,
      message: refusalMessage(name ?? literal!.address, port, decision),
    };
  };

  let candidates: string[];
  if (name === undefined) {
    candidates = [literal!.address];
  } else {
    // Judge the name before resolving it: a denied name never reaches upstream DNS.
    const byName = decideName(policy, name, port);
    if (byName.verdict === "deny") return refuse(byName);
    try {
      candidates = await ctx.resolver.resolve(name);
    } catch (err) {
      const reason = `cannot resolve: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      ctx.decisions.record({ protocol, target: name, port, decision: byName, reason });
      return { ok: false, status: 502, message: `${name}: ${reason}` };
    }
  }

  let firstRefusal: { decision: DestinationDecision; address: string } | undefined;
  for (const address of candidates) {
    const decision = judgeDestination(policy, ctx.reserved, { name, address, port });
    if (decision.verdict === "deny") {
      firstRefusal ??= { decision, address };
      continue;
    }
    ctx.decisions.record({ protocol, target: name ?? address, port, decision, address });
    try {
      return { ok: true, socket: await connectTo(address, port, ctx.connectTimeoutMs), address };
    } catch (err) {
      const timedOut = (err as Error).message === "timeout";
      return {
        ok: false,
        status: timedOut ? 504 : 502,
        message: `${name ?? address}:${port} (${address}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      };
    }
  }
  if (!firstRefusal) {
    return refuse({ verdict: "deny", rule: "default" }, undefined, "no address");
  }
  return refuse(firstRefusal.decision, firstRefusal.address);
}

function connectTo(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: address,
      port,
      allowHalfOpen: true,
      noDelay: true,
      readableHighWaterMark: PROXY_HIGH_WATER_MARK,
      writableHighWaterMark: PROXY_HIGH_WATER_MARK,
    } as NetConnectOpts);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("timeout"));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      // Whoever takes the socket adds its own handler; until then an early
      // reset must not crash the process.
      socket.on("error", () => {});
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function refusalMessage(target: string, port: number, d: DestinationDecision): string {
  const by =
    d.rule === "default"
      ? "the default action"
      : d.rule === "reserved-address"
        ? "the reserved-address rule (private, loopback, link-local or metadata address; allow it with an address rule)"
        : `rule ${d.rule}`;
  return `egress to ${target}:${port} denied by ${by} of the sandbox's egress policy`;
}
