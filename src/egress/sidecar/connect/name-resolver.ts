// Resolve allowed names to IPv4 addresses through the same upstream the DNS
// proxy forwards to (never the system resolver: resolv.conf inside the sandbox
// points at the proxy itself). Answers are cached for their TTL, capped, so a
// burst of connections to one name costs one query; the address check runs on
// every connection regardless, so caching never skips the rebinding defense.
// IPv4 only: the lockdown closes IPv6.
import { Resolver } from "node:dns/promises";

export interface NameResolver {
  resolve(name: string): Promise<string[]>;
}

export interface NameResolverOptions {
  /** "host" or "host:port" of the upstream DNS server. */
  upstream: string;
  timeoutMs?: number;
  maxTtlSeconds?: number;
}

export function upstreamNameResolver(opts: NameResolverOptions): NameResolver {
  const resolver = new Resolver({ timeout: opts.timeoutMs ?? 2000, tries: 2 });
  resolver.setServers([opts.upstream]);
  const maxTtl = opts.maxTtlSeconds ?? 30;
  const cache = new Map<string, { addresses: string[]; expires: number }>();
  const inflight = new Map<string, Promise<string[]>>();

  const lookup = async (name: string): Promise<string[]> => {
    const records = await resolver.resolve4(name, { ttl: true });
    const ttl = Math.min(maxTtl, ...records.map((r) => r.ttl));
    const addresses = records.map((r) => r.address);
    if (ttl > 0) cache.set(name, { addresses, expires: Date.now() + ttl * 1000 });
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return addresses;
  };

  return {
    resolve(name) {
      const hit = cache.get(name);
      if (hit && hit.expires > Date.now()) return Promise.resolve(hit.addresses);
      let pending = inflight.get(name);
      if (!pending) {
        pending = lookup(name).finally(() => inflight.delete(name));
        inflight.set(name, pending);
      }
      return pending;
    },
  };
}
