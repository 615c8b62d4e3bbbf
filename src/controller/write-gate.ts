// The write gate: a replica that has lost its Lease (or cannot know it still
// holds it) must not write, whatever it was doing when it found out.
//
// A leader paused past its lease (SIGSTOP, a long GC, a partition) resumes in
// the middle of its reconciles: the responses that arrived meanwhile run before
// any timer, so a "stop leading" timer fires too late to stop the next write.
// The gate is asked instead, synchronously, as late as possible: every mutating
// request made through a gated KubeConfig asks it once when it authenticates
// and again in undici's onRequestStart, right before the request's first byte
// is written to the socket. Everything that writes to the apiserver on the
// controller's behalf (status writer, event recorder, finalizers, raw requests,
// and the backends' typed clients) authenticates through that KubeConfig, so
// no writer can forget to ask.
//
// What remains is the window between that synchronous check and the kernel
// sending the bytes (microseconds), and a request already on the wire: the
// apiserver has no fencing token to refuse those, and the renew deadline's
// margin under the lease duration is what covers them.
import { AsyncResource } from "node:async_hooks";
import type * as k8s from "@kubernetes/client-node";
import { type Dispatcher, getGlobalDispatcher } from "undici";

/** Thrown instead of writing when this replica may no longer write (it lost or gave up its Lease). */
export class NotLeaderError extends Error {
  override name = "NotLeaderError";
}

/**
 * Throws NotLeaderError when writing is no longer allowed; returns when it is.
 * A `contextual` gate's answer depends on the async context of the write (a
 * sharded controller's: the shard of the reconcile making it), so each request
 * is checked, at the socket too, in the context it was made in.
 */
export type WriteGate = (() => void) & { contextual?: boolean };

const WRITES: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

type RequestContext = Parameters<k8s.KubeConfig["applySecurityAuthentication"]>[0];

/**
 * The same KubeConfig (credentials, rate limit, connections) whose mutating
 * requests ask `gate` before they are sent. Reads and watches are never gated:
 * a follower keeps its caches warm.
 */
export function gateWrites(kc: k8s.KubeConfig, gate: WriteGate): k8s.KubeConfig {
  const gated = new WeakMap<Dispatcher, Dispatcher>();
  const guard = (dispatcher: Dispatcher) => {
    let d = gated.get(dispatcher);
    if (!d) {
      d = dispatcher.compose(gateInterceptor(gate));
      gated.set(dispatcher, d);
    }
    return d;
  };
  const applySecurityAuthentication = async (context: RequestContext) => {
    // After the wrapped call: it may wait for a rate-limit token, long enough to lose the Lease.
    await kc.applySecurityAuthentication(context);
    if (!WRITES.has(String(context.getHttpMethod()))) return;
    gate();
    const dispatcher = context.getDispatcher() ?? getGlobalDispatcher();
    // undici may start the request from another request's callbacks: bind the
    // last check to this request's context (a composed dispatcher is a thin wrapper).
    context.setDispatcher(
      gate.contextual
        ? dispatcher.compose(gateInterceptor(AsyncResource.bind(gate)))
        : guard(dispatcher),
    );
  };
  // Methods run with the proxy as `this`: makeApiClient hands `this` to the
  // clients it builds as their authenticator, which must be the gated one.
  return new Proxy(kc, {
    get(target, prop, receiver) {
      if (prop === "applySecurityAuthentication") return applySecurityAuthentication;
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** An undici interceptor that asks the gate when the request is about to be written to the socket. */
function gateInterceptor(gate: WriteGate): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => dispatch(opts, gatedHandler(handler, gate));
}

function refusal(gate: WriteGate): Error | undefined {
  try {
    gate();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new NotLeaderError(String(err));
  }
}

/**
 * The handler with its start hook (onRequestStart, or onConnect in undici's
 * older handler interface) asking the gate first. Both are called
 * synchronously just before the request is written; aborting there sends nothing.
 */
function gatedHandler(
  handler: Dispatcher.DispatchHandler,
  gate: WriteGate,
): Dispatcher.DispatchHandler {
  return new Proxy(handler, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "onRequestStart") {
        return (controller: { abort(reason: Error): void }, context: unknown) => {
          const refused = refusal(gate);
          if (refused) return controller.abort(refused);
          return value.call(target, controller, context);
        };
      }
      if (prop === "onConnect") {
        return (abort: (reason: Error) => void, context: unknown) => {
          const refused = refusal(gate);
          if (refused) return abort(refused);
          return value.call(target, abort, context);
        };
      }
      return value.bind(target);
    },
  });
}

/** The NotLeaderError behind an error (fetch wraps what aborted it as the cause), if there is one. */
export function notLeaderCause(err: unknown): NotLeaderError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof NotLeaderError) return e;
  }
  return undefined;
}
