// "host:port" as it appears in a CONNECT request line or a Host header.

export interface Authority {
  /** A name or an IP address (IPv6 without brackets). */
  host: string;
  port: number;
}

const NAME = /^[A-Za-z0-9_.-]{1,253}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Parse an authority; `defaultPort` makes the port optional (Host header).
 * Anything that is not plainly a host and a port (userinfo, paths, spaces,
 * percent-encoding) is refused rather than interpreted.
 */
export function parseAuthority(text: string, defaultPort?: number): Authority | undefined {
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (!IPV6.test(host)) return undefined;
  } else {
    const plain = /^([^:]*)(?::(\d{1,5}))?$/.exec(text);
    if (!plain) return undefined;
    host = plain[1]!;
    portText = plain[2];
    if (!NAME.test(host)) return undefined;
  }
  const port = portText === undefined ? defaultPort : Number(portText);
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}
