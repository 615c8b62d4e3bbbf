// Frame encoding of the exec stream (docs/agent-protocol.md): 1 byte type,
// 4 bytes big-endian length, payload.

import { ProtocolError } from "./errors.js";
import { MAX_FRAME_PAYLOAD } from "./protocol.js";

export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError("frame payload larger than 1 MiB");
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Encodes bytes as as many frames as the payload limit needs. */
export function* encodeFrames(type: number, data: Uint8Array): Generator<Buffer> {
  for (let at = 0; at < data.length; at += MAX_FRAME_PAYLOAD) {
    yield encodeFrame(type, data.subarray(at, at + MAX_FRAME_PAYLOAD));
  }
}

export interface Frame {
  type: number;
  payload: Buffer;
}

/** Splits a byte stream into frames; bytes may arrive cut anywhere. */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    let buf = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.size);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (len > MAX_FRAME_PAYLOAD) throw new ProtocolError(`frame of ${len} bytes exceeds 1 MiB`);
      if (buf.length < 5 + len) break;
      frames.push({ type: buf[0]!, payload: buf.subarray(5, 5 + len) });
      buf = buf.subarray(5 + len);
    }
    this.pending = buf.length ? [buf] : [];
    this.size = buf.length;
    return frames;
  }

  /** Bytes of an incomplete frame left over (a stream must end at a frame boundary). */
  get leftover(): number {
    return this.size;
  }
}
