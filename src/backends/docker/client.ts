// The Engine API client and how its failures are told apart: an unreachable
// daemon is a condition on the sandboxes and a failing /readyz, never a crash;
// a 404 is "not there"; anything else carries the daemon's own message.
import { readFileSync } from "node:fs";
import Docker from "dockerode";
import { ignoreGone, ignoreNotFound } from "../errors.js";

/**
 * A client for `host` (unix:///path, tcp://host:port, npipe://...), or from the
 * environment as the docker CLI reads it: DOCKER_HOST, plus DOCKER_TLS_VERIFY
 * and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) for TCP with TLS.
 */
export function dockerClient(host?: string): Docker {
  if (!host) return new Docker(); // docker-modem reads DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
  const url = new URL(host);
  if (url.protocol === "unix:") return new Docker({ socketPath: url.pathname });
  const certPath = process.env.DOCKER_CERT_PATH;
  const tls = process.env.DOCKER_TLS_VERIFY === "1" && certPath;
  return new Docker({
    host: url.hostname,
    port: url.port || (tls ? 2376 : 2375),
    protocol: tls ? "https" : "http",
    ...(tls
      ? {
          ca: readFileSync(`${certPath}/ca.pem`),
          cert: readFileSync(`${certPath}/cert.pem`),
          key: readFileSync(`${certPath}/key.pem`),
        }
      : {}),
  });
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOENT", // the socket file is gone: the daemon is not running
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

/** The daemon could not be reached (as opposed to answering with an error). */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; statusCode?: number; message?: string } | undefined;
  if (e?.statusCode !== undefined) return false;
  return (
    (e?.code !== undefined && CONNECTION_CODES.has(e.code)) ||
    /socket hang up/.test(e?.message ?? "")
  );
}

export function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number } | undefined)?.statusCode;
}

/** The daemon's message ("No such image: ...") rather than dockerode's wrapper text. */
export function daemonMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; reason?: string; message?: string };
  return e?.json?.message ?? e?.message ?? String(err);
}

/** Resolves undefined on 404: absence is an answer, not a failure (shared with the pod backend). */
export const orUndefined = ignoreNotFound;

/** Ignores 404 (already gone) and 409 (already being removed / already exists). */
export async function ignoreGoneOrConflict(p: Promise<unknown>): Promise<void> {
  await ignoreGone(p);
}
