// The SNI parser against ClientHellos produced by a real TLS client (node:tls),
// re-split over records and delivered in pieces, plus hostile input.
import { type AddressInfo, createServer, type Socket } from "node:net";
import { connect } from "node:tls";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseClientHello } from "./client-hello.js";

/** Capture the first flight a real TLS client sends for `servername`. */
async function captureClientHello(servername?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock: Socket) => {
      const chunks: Buffer[] = [];
      sock.on("data", (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (parseClientHello(all).kind !== "incomplete" || all.length > 4096) {
          sock.destroy();
          server.close();
          resolve(all);
        }
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      const client = connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
      client.on("error", () => {});
    });
    server.on("error", reject);
  });
}

/** Re-split one handshake message over TLS records of the given payload sizes. */
function resplit(hello: Buffer, sizes: number[]): Buffer {
  const length = hello.readUInt16BE(3);
  const message = hello.subarray(5, 5 + length);
  const records: Buffer[] = [];
  let offset = 0;
  let i = 0;
  while (offset < message.length) {
    const n = Math.max(1, Math.min(sizes[i++ % sizes.length]!, message.length - offset));
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(n, 3);
    records.push(header, message.subarray(offset, offset + n));
    offset += n;
  }
  return Buffer.concat(records);
}

let withSni: Buffer;
let withoutSni: Buffer;

beforeAll(async () => {
  withSni = await captureClientHello("Api.Example.com");
  withoutSni = await captureClientHello(undefined);
});

describe("parseClientHello", () => {
  it("finds the server name a real client sends", () => {
    expect(parseClientHello(withSni)).toEqual({
      kind: "client-hello",
      serverName: "Api.Example.com",
    });
  });

  it("reports a ClientHello without SNI (a client connecting to an IP)", () => {
    expect(parseClientHello(withoutSni)).toEqual({ kind: "client-hello" });
  });

  it("waits for more on every strict prefix, whatever the split", () => {
    for (let n = 0; n < withSni.length; n++) {
      expect(parseClientHello(withSni.subarray(0, n)).kind).toBe("incomplete");
    }
  });

  it("reassembles a ClientHello split over many records (any split gives the same name)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }),
        (sizes) => {
          const split = resplit(withSni, sizes);
          expect(parseClientHello(split)).toEqual({
            kind: "client-hello",
            serverName: "Api.Example.com",
          });
          expect(parseClientHello(split.subarray(0, split.length - 1)).kind).toBe("incomplete");
        },
      ),
    );
  });

  it("refuses things that are not a TLS handshake", () => {
    expect(parseClientHello(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01])).kind).toBe("invalid"); // SSLv2
    expect(parseClientHello(Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5])).kind).toBe("invalid");
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])).kind).toBe("invalid"); // ServerHello
  });

  it("refuses an oversized ClientHello instead of buffering it", () => {
    const header = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x10, 0, 0]);
    expect(parseClientHello(header)).toEqual({ kind: "invalid", reason: "ClientHello too large" });
  });

  it("refuses a server name with bytes no host name has", () => {
    const bad = Buffer.from(withSni);
    const at = bad.indexOf("Api.Example.com");
    bad[at + 3] = 0x00;
    expect(parseClientHello(bad).kind).toBe("invalid");
  });

  it("never throws, whatever bytes arrive", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, prefix) => {
        const data = prefix ? Buffer.concat([withSni.subarray(0, 60), bytes]) : Buffer.from(bytes);
        expect(() => parseClientHello(data)).not.toThrow();
      }),
    );
  });

  it("never throws on corrupted real ClientHellos", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 5, max: 400 }),
        fc.integer({ min: 0, max: 255 }),
        (at, value) => {
          const bad = Buffer.from(withSni);
          if (at < bad.length) bad[at] = value;
          expect(() => parseClientHello(bad)).not.toThrow();
        },
      ),
    );
  });
});
