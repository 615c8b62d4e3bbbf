// The default resolver for docker sandboxes' sidecars. Inside a user-defined
// Docker network a container's resolv.conf names Docker's embedded resolver
// (127.0.0.11), whose forwarding the lockdown does not let out, so the sidecar
// is told a real upstream: by default the one this operator's host uses.
import { readFileSync } from "node:fs";

export function defaultUpstreamDns(path = "/etc/resolv.conf"): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const server = m?.[1];
    if (server && !server.startsWith("127.") && server !== "::1") return server;
  }
  return undefined;
}
