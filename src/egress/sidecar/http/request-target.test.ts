// How the transparent port-80 listener reads a request's destination: the way
// an origin server would (RFC 9112 §3.2), refusing what a server could route
// elsewhere than what was judged.
import { describe, expect, it } from "vitest";
import { transparentRequestTarget } from "./request-target.js";

const headers = (...hosts: string[]) => hosts.flatMap((h) => ["Host", h]);

describe("transparentRequestTarget", () => {
  it.each([
    ["origin form, one Host", headers("allowed.test"), "/a?b=1", "allowed.test", "/a?b=1"],
    ["Host with a port", headers("allowed.test:80"), "/", "allowed.test", "/"],
    ["asterisk form", headers("allowed.test"), "*", "allowed.test", "*"],
    [
      "absolute form agreeing with Host",
      headers("allowed.test"),
      "http://allowed.test/x?y",
      "allowed.test",
      "/x?y",
    ],
    [
      "absolute form, case and default port differ",
      headers("Allowed.Test:80"),
      "HTTP://allowed.test./x",
      "allowed.test.",
      "/x",
    ],
    [
      "absolute form with the authority's port",
      headers("allowed.test:80"),
      "http://allowed.test:80",
      "allowed.test",
      "/",
    ],
    ["a lower-case host header name", ["host", "allowed.test"], "/", "allowed.test", "/"],
  ])("accepts %s", (_, raw, url, host, path) => {
    expect(transparentRequestTarget(raw, url, 80)).toEqual({ ok: true, host, path });
  });

  it.each([
    ["two Host headers", headers("allowed.test", "denied.test"), "/", /more than one Host/],
    ["two identical Host headers", ["Host", "a.test", "host", "a.test"], "/", /more than one Host/],
    ["no Host header", [], "/", /Host header naming the destination is required/],
    ["an empty Host header", headers(""), "/", /Host header naming/],
    ["a Host with userinfo", headers("user@allowed.test"), "/", /Host header naming/],
    [
      "an absolute form naming another host",
      headers("allowed.test"),
      "http://denied.test/",
      /authority \(denied\.test\) disagrees with the Host header \(allowed\.test\)/,
    ],
    [
      "an absolute form on another port",
      headers("allowed.test"),
      "http://allowed.test:8080/",
      /disagrees/,
    ],
    ["an absolute form without Host", [], "http://allowed.test/", /Host header naming/],
    [
      "an https absolute form",
      headers("allowed.test"),
      "https://allowed.test/",
      /must be http:\/\//,
    ],
    [
      "userinfo in the absolute form",
      headers("allowed.test"),
      "http://u:p@allowed.test/",
      /userinfo|malformed authority/,
    ],
    [
      "a target in no known form",
      headers("allowed.test"),
      "allowed.test/x",
      /neither origin-form nor absolute-form/,
    ],
    ["a malformed absolute form", headers("allowed.test"), "http://allowed test/", /malformed/],
  ])("refuses %s with 400", (_, raw, url, reason) => {
    const r = transparentRequestTarget(raw, url, 80);
    expect(r).toMatchObject({ ok: false, status: 400 });
    expect(r.ok ? "" : r.reason).toMatch(reason);
  });
});
