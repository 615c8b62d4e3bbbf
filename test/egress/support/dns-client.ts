// Ask a DNS server one question over UDP or TCP (tests only).
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import * as dnsPacket from "dns-packet";

export function dnsQuery(name: string, type: dnsPacket.RecordType = "A"): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: randomInt(0, 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
  });
}

export function askUdp(
  host: string,
  port: number,
  message: Buffer,
  timeoutMs = 3000,
): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("DNS timeout"));
    }, timeoutMs);
    socket.on("message", (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(reply));
    });
    socket.send(message, port, host);
  });
}

export function askTcp(
  host: string,
  port: number,
  message: Buffer,
  timeoutMs = 3000,
): Promise<dnsPacket.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("DNS timeout"));
    }, timeoutMs);
    let pending: Buffer = Buffer.alloc(0);
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(dnsPacket.decode(pending.subarray(2, 2 + pending.readUInt16BE(0))));
      }
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(message.length);
    socket.write(Buffer.concat([len, message]));
  });
}

export const rcodeOf = (p: dnsPacket.DecodedPacket) => (p as unknown as { rcode: string }).rcode;
export const addressesOf = (p: dnsPacket.DecodedPacket) =>
  (p.answers ?? [])
    .filter((a) => a.type === "A")
    .map((a) => (a as { data?: unknown }).data as string);
