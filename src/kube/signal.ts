// Cancelling Kubernetes API calls: the typed client takes no AbortSignal of its
// own, but its request context does; a middleware hands it over, so an aborted
// reconcile (leadership lost, shutdown) stops its in-flight requests.
import * as k8s from "@kubernetes/client-node";

type Options = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;

/** `opts` plus a middleware that ties each request to `signal` (unchanged without one). */
export function withSignal(signal: AbortSignal | undefined, opts?: Options): Options | undefined {
  if (!signal) return opts;
  const middleware: k8s.ObservableMiddleware = {
    pre: (request) => {
      request.setSignal(signal);
      return new k8s.Observable(Promise.resolve(request));
    },
    post: (response) => new k8s.Observable(Promise.resolve(response)),
  };
  return {
    ...opts,
    middleware: [...(opts?.middleware ?? []), middleware],
    // Keep the client's own middleware (authentication) and any chained before.
    middlewareMergeStrategy: "append",
  };
}
