// What a client sees when the proxy will not (or cannot) connect it: a short
// plain-text HTTP response naming the reason, then the connection closes.
import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

export function refuseResponse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
  res.end(`${message}\n`);
}

/** For a raw socket (CONNECT, Upgrade): write a whole HTTP response and close. */
export function refuseSocket(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
