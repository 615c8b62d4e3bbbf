// Clients the benchmark drives: direct TLS, TLS through the explicit proxy
// (CONNECT), TLS through the transparent SNI listener. Each returns a TLS
// socket after the handshake; `fetchBytes` reads a response to the end.
import { connect as netConnect, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

export interface Route {
  name: string;
  open(): Promise<TLSSocket>;
}

const SERVERNAME = "bench.test";

function tlsOver(socket: Socket | undefined, ca: Buffer, port?: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      ...(socket ? { socket } : { host: "127.0.0.1", port }),
      servername: SERVERNAME,
      ca,
    });
    tls.once("secureConnect", () => resolve(tls));
    tls.once("error", reject);
  });
}

function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port, noDelay: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Open a CONNECT tunnel through the explicit proxy. */
export async function connectTunnel(proxyPort: number, targetPort: number): Promise<Socket> {
  const s = await tcp(proxyPort);
  s.write(
    `CONNECT ${SERVERNAME}:${targetPort} HTTP/1.1\r\nHost: ${SERVERNAME}:${targetPort}\r\n\r\n`,
  );
  await new Promise<void>((resolve, reject) => {
    let head = "";
    const onData = (d: Buffer) => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      s.removeListener("data", onData);
      if (head.startsWith("HTTP/1.1 200")) resolve();
      else reject(new Error(head.split("\r\n")[0]));
    };
    s.on("data", onData);
    s.once("error", reject);
  });
  return s;
}

/**
 * A plain TCP socket to the server, handled as the tunnel's is before TLS
 * starts over it (read from in JS, then handed to tls.connect): the baseline
 * the explicit proxy's route is fairly compared with.
 */
async function preopened(port: number): Promise<Socket> {
  const s = await tcp(port);
  const onData = () => {};
  s.on("data", onData);
  s.removeListener("data", onData);
  return s;
}

export function routes(ca: Buffer, ports: { server: number; proxy: number; tls: number }): Route[] {
  return [
    { name: "direct", open: () => tlsOver(undefined, ca, ports.server) },
    {
      name: "explicit-proxy",
      open: async () => tlsOver(await connectTunnel(ports.proxy, ports.server), ca),
    },
    { name: "transparent-tls", open: () => tlsOver(undefined, ca, ports.tls) },
    { name: "direct-over-socket", open: async () => tlsOver(await preopened(ports.server), ca) },
  ];
}

/** GET `path` on an open TLS socket; resolves with the bytes of body received. */
export function fetchBytes(tls: TLSSocket, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0;
    let headerDone = false;
    let pending = "";
    tls.on("data", (d: Buffer) => {
      if (headerDone) {
        received += d.length;
        return;
      }
      pending += d.toString("latin1");
      const end = pending.indexOf("\r\n\r\n");
      if (end >= 0) {
        headerDone = true;
        received += Buffer.byteLength(pending.slice(end + 4), "latin1");
      }
    });
    tls.once("end", () => resolve(received));
    tls.once("error", reject);
    tls.write(`GET ${path} HTTP/1.1\r\nHost: ${SERVERNAME}\r\nConnection: close\r\n\r\n`);
  });
}
