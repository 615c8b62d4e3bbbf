import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { keyId } from "./keys.js";
import { mintToken, TokenError, verifyToken } from "./tokens.js";

const pair = () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signing: { kid: keyId(publicKey), privateKey },
    verify: new Map([[keyId(publicKey), publicKey]]),
  };
};
const now = Math.floor(Date.now() / 1000);
const claims = {
  ns: "a",
  name: "b",
  uid: "u-1",
  verbs: ["exec" as const],
  exp: now + 60,
  sub: "alice",
};

const reason = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof TokenError) return e.reason;
    throw e;
  }
  return "accepted";
};

describe("scoped tokens", () => {
  const k = pair();
  const token = mintToken(k.signing, claims);

  it("verifies what it signed", () => {
    expect(verifyToken(token, k.verify)).toMatchObject({
      ...claims,
      iat: expect.any(Number),
      jti: expect.any(String),
    });
  });

  it("refuses expired, foreign, tampered and malformed tokens", () => {
    expect(
      reason(() => verifyToken(mintToken(k.signing, { ...claims, exp: now - 1 }), k.verify)),
    ).toBe("expired");
    expect(reason(() => verifyToken(token, pair().verify))).toBe("unknown-key");
    const other = pair();
    const forged = mintToken({ kid: k.signing.kid, privateKey: other.signing.privateKey }, claims);
    expect(reason(() => verifyToken(forged, k.verify))).toBe("bad-signature");
    const [p, kid, , sig] = token.split(".");
    const widened = Buffer.from(JSON.stringify({ ...claims, verbs: ["exec", "files"] })).toString(
      "base64url",
    );
    expect(reason(() => verifyToken(`${p}.${kid}.${widened}.${sig}`, k.verify))).toBe(
      "bad-signature",
    );
    for (const bad of [
      "",
      "sgw1",
      "sgw1.a.b",
      "sgw1.a.b.c.d",
      "sgw1.a!.b.c",
      `sgw1.${"x".repeat(3000)}.b.c`,
      "jwt.a.b.c",
    ])
      expect(reason(() => verifyToken(bad, k.verify))).toBe("malformed");
    expect(
      reason(() => verifyToken(mintToken(k.signing, { ...claims, iat: now + 3600 }), k.verify)),
    ).toBe("not-yet-valid");
  });

  it("refuses claims beyond the schema even when signed", () => {
    expect(() => mintToken(k.signing, { ...claims, verbs: ["mint" as never] })).toThrow();
  });
});
