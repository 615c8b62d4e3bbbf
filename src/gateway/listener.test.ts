import { describe, expect, it } from "vitest";
import { sniff } from "./listener.js";

describe("sniff: which protocol a cleartext connection speaks", () => {
  it.each([
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2"],
    ["PRI ", "h2"],
    ["GET / HTTP/1.1\r\n", "http/1.1"],
    ["POST /v1/exec HTTP/1.1\r\n", "http/1.1"],
    ["PUT /x HTTP/1.1\r\n", "http/1.1"],
    ["PATCH /x HTTP/1.1\r\n", "http/1.1"],
    ["PRX", "http/1.1"],
    // Too little to tell "PRI " from "PUT "/"POST"/"PATCH": wait for more.
    ["P", undefined],
    ["PR", undefined],
    ["PRI", undefined],
    ["", undefined],
  ])("%j -> %s", (first, want) => {
    expect(sniff(Buffer.from(first))).toBe(want);
  });
});
