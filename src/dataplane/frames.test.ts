import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, encodeFrames, FrameDecoder } from "./frames.js";

describe("frames", () => {
  it("decodes whatever way the bytes are cut", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.integer({ min: 0, max: 255 }),
            payload: fc.uint8Array({ maxLength: 300 }),
          }),
        ),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));
          const dec = new FrameDecoder();
          const got: { type: number; payload: Buffer }[] = [];
          for (let at = 0, i = 0; at < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            for (const f of dec.push(wire.subarray(at, at + n)))
              got.push({ type: f.type, payload: Buffer.from(f.payload) });
            at += n;
          }
          expect(dec.leftover).toBe(0);
          expect(got.map((f) => [f.type, f.payload.toString("hex")])).toEqual(
            frames.map((f) => [f.type, Buffer.from(f.payload).toString("hex")]),
          );
        },
      ),
    );
  });

  it("splits large payloads and refuses oversized frames", () => {
    const big = Buffer.alloc((1 << 20) * 2 + 3, 7);
    const parts = [...encodeFrames(1, big)];
    expect(parts.map((p) => p.length - 5)).toEqual([1 << 20, 1 << 20, 3]);
    const bad = Buffer.from([1, 0x7f, 0xff, 0xff, 0xff]);
    expect(() => new FrameDecoder().push(bad)).toThrow(/exceeds 1 MiB/);
  });
});
