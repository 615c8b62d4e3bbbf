// Where a request on the transparent port-80 listener is going, read the way
// an origin server reads it (RFC 9112 §3.2, §3.3): exactly one Host header,
// and when the request-target is in absolute form, its authority (which a
// server must use instead of Host). A request a server could route
// differently from what the proxy judged is refused instead:
//   - several Host header lines, or none (400 per RFC 9112 §3.2);
//   - an absolute-form target whose authority disagrees with Host, a scheme
//     other than http, or userinfo in it.
// The forwarded request is in origin form with the one Host, so the server
// behind sees exactly the destination that was judged.
import { parseAuthority } from "./authority.js";

export type RequestTarget =
  | {
      ok: true;
      /** The name or address judged and connected to. */
      host: string;
      /** Origin-form target to forward ("/path?query"; "*" for OPTIONS *). */
      path: string;
    }
  | { ok: false; status: 400; reason: string };

/**
 * `rawHeaders`: Node's raw name/value pairs (every Host line, not just the
 * first); `url`: the request-target as received; `port`: the port the
 * redirect says the client meant (the Host header's port is not trusted).
 */
export function transparentRequestTarget(
  rawHeaders: readonly string[],
  url: string | undefined,
  port: number,
): RequestTarget {
  const hosts: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === "host") hosts.push(rawHeaders[i + 1]!.trim());
  }
  if (hosts.length > 1) return refuse("more than one Host header");
  const hostHeader = hosts[0] === undefined ? undefined : parseAuthority(hosts[0], port);
  if (!hostHeader) return refuse("a Host header naming the destination is required");

  const target = url ?? "/";
  if (target.startsWith("/") || target === "*") {
    return { ok: true, host: hostHeader.host, path: target };
  }
  // Absolute form: a server routes by this authority and ignores Host.
  const absolute = parseAbsolute(target, port);
  if (!absolute.ok) return absolute;
  if (
    normalizeHost(absolute.host) !== normalizeHost(hostHeader.host) ||
    absolute.port !== hostHeader.port
  ) {
    return refuse(
      `the request-target's authority (${absolute.authority}) disagrees with the Host header (${hosts[0]})`,
    );
  }
  return { ok: true, host: absolute.host, path: absolute.path };
}

type Absolute =
  | { ok: true; host: string; port: number; authority: string; path: string }
  | { ok: false; status: 400; reason: string };

function parseAbsolute(target: string, port: number): Absolute {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(target);
  if (!scheme) return refuse("the request-target is neither origin-form nor absolute-form");
  if (scheme[1]!.toLowerCase() !== "http") {
    return refuse(`an absolute-form request-target on port ${port} must be http://`);
  }
  let parsed: URL;
  try {
    parsed = new URL(target);
  } catch {
    return refuse("malformed absolute-form request-target");
  }
  if (parsed.username || parsed.password) {
    return refuse("userinfo in the request-target is not accepted");
  }
  // The authority as written (URL normalises it: "HOST:80" becomes "host").
  const written = target.slice(scheme[0].length).split(/[/?#]/, 1)[0]!;
  const authority = parseAuthority(written, port);
  if (!authority) return refuse("malformed authority in the request-target");
  return {
    ok: true,
    host: authority.host,
    port: authority.port,
    authority: written,
    path: `${parsed.pathname}${parsed.search}`,
  };
}

/** Names compare case-insensitively and without one trailing dot. */
function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.$/, "");
}

function refuse(reason: string): { ok: false; status: 400; reason: string } {
  return { ok: false, status: 400, reason };
}
