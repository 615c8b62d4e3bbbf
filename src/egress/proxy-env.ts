// What a workload sharing the sidecar's network namespace is told about the
// explicit proxy. Tools that ignore these variables are still caught by the
// lockdown's transparent redirect; these just make the common path explicit.
import { EGRESS_PORTS } from "./contract.js";

export function workloadProxyEnv(): Record<string, string> {
  const proxy = `http://127.0.0.1:${EGRESS_PORTS.proxy}`;
  const noProxy = "localhost,127.0.0.1,::1";
  return {
    HTTP_PROXY: proxy,
    HTTPS_PROXY: proxy,
    NO_PROXY: noProxy,
    http_proxy: proxy,
    https_proxy: proxy,
    no_proxy: noProxy,
  };
}
