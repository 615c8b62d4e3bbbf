// HTTP and HTTPS servers standing in for websites. Every response says which
// local address and port served it and which Host it was asked for, so a test
// can tell exactly where a connection really went.
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";

export interface Served {
  local: string;
  port: number;
  host: string | undefined;
  path: string | undefined;
}

export function describeRequest(req: IncomingMessage): Served {
  return {
    local: (req.socket.localAddress ?? "").replace(/^::ffff:/, ""),
    port: req.socket.localPort ?? 0,
    host: req.headers.host,
    path: req.url,
  };
}

function handler(onRequest?: (s: Served) => void) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const served = describeRequest(req);
    onRequest?.(served);
    // Large bodies on /bytes/N, for throughput measurements.
    const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? "");
    if (bytes) {
      const total = Number(bytes[1]);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
      const chunk = Buffer.alloc(64 * 1024, 120);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          const n = Math.min(chunk.length, total - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
            return res.once("drain", pump);
        }
        res.end();
      };
      return pump();
    }
    req.resume();
    const body = `${JSON.stringify(served)}\n`;
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  };
}

export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export function httpServer(onRequest?: (s: Served) => void): Server {
  return createHttpServer({ keepAliveTimeout: 1000 }, handler(onRequest));
}

export function httpsServer(
  tls: { cert: Buffer; key: Buffer },
  onRequest?: (s: Served) => void,
): Server {
  return createHttpsServer(
    { ...tls, keepAliveTimeout: 1000 },
    handler(onRequest),
  ) as unknown as Server;
}
