// DNS over TCP frames each message with a 16-bit length (RFC 1035 §4.2.2).
import type { Socket } from "node:net";

/** Largest message a TCP frame can carry. */
export const MAX_TCP_MESSAGE = 65535;

export function frame(message: Buffer): Buffer {
  const header = Buffer.alloc(2);
  header.writeUInt16BE(message.length, 0);
  return Buffer.concat([header, message]);
}

/** Call `onMessage` for each complete framed message arriving on `socket`. */
export function readFrames(socket: Socket, onMessage: (message: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 2) {
      const length = pending.readUInt16BE(0);
      if (pending.length < 2 + length) break;
      onMessage(pending.subarray(2, 2 + length));
      pending = pending.subarray(2 + length);
    }
  });
}
