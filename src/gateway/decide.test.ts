import { describe, expect, it } from "vitest";
import { mintable, sandboxAdmits, scopedTokenAllows } from "./decide.js";
import type { Claims } from "./tokens.js";

const claims: Claims = {
  ns: "a",
  name: "b",
  uid: "u1",
  verbs: ["exec", "files"],
  iat: 0,
  exp: 1,
  sub: "x",
  jti: "j",
};

describe("scopedTokenAllows", () => {
  it.each([
    ["a", "b", "exec", true, undefined],
    ["a", "b", "files", true, undefined],
    ["a", "b", "connect", false, "VERB_NOT_GRANTED"],
    ["a", "b", "mint", false, "VERB_NOT_GRANTED"],
    ["a", "c", "exec", false, "WRONG_SANDBOX"],
    ["z", "b", "exec", false, "WRONG_SANDBOX"],
  ] as const)("%s/%s %s", (ns, name, verb, allow, code) => {
    const d = scopedTokenAllows(claims, ns, name, verb);
    expect(d.allow).toBe(allow);
    if (!d.allow) expect(d).toMatchObject({ status: 403, code });
  });
});

describe("sandboxAdmits", () => {
  it.each([
    [undefined, undefined, 404, "SANDBOX_NOT_FOUND"],
    [{ uid: "u2", terminating: false }, "u1", 403, "SANDBOX_RECREATED"],
    [{ uid: "u1", terminating: true }, "u1", 409, "SANDBOX_TERMINATING"],
    [{ uid: "u1", terminating: true }, undefined, 409, "SANDBOX_TERMINATING"],
  ] as const)("%o with token uid %s -> %i", (s, uid, status, code) => {
    expect(sandboxAdmits(s, uid, "a", "b")).toMatchObject({ allow: false, status, code });
  });
  it("admits the live incarnation", () => {
    expect(sandboxAdmits({ uid: "u1", terminating: false }, "u1", "a", "b")).toEqual({
      allow: true,
    });
    expect(sandboxAdmits({ uid: "u1", terminating: false }, undefined, "a", "b")).toEqual({
      allow: true,
    });
  });
});

describe("mintable", () => {
  it.each([
    [{ verbs: ["exec"], ttlSeconds: 60 }, true],
    [{ verbs: [], ttlSeconds: 60 }, false],
    [{ verbs: ["mint"], ttlSeconds: 60 }, false],
    [{ verbs: ["exec"], ttlSeconds: 0 }, false],
    [{ verbs: ["exec"], ttlSeconds: 3601 }, false],
  ])("%o", (req, allow) => {
    expect(mintable(req, 3600).allow).toBe(allow);
  });
});
