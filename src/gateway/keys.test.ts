import { mkdtempSync, readdirSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keygen } from "../cli/gateway.js";
import { KeyStore, loadKeys } from "./keys.js";
import { mintToken, TokenError, verifyToken } from "./tokens.js";

const claims = () => ({
  ns: "a",
  name: "b",
  uid: "u",
  verbs: ["exec" as const],
  exp: Math.floor(Date.now() / 1000) + 60,
  sub: "t",
});

describe("key rotation", () => {
  it("keeps verifying tokens of a retired key while new ones are signed by the new key", () => {
    const dir = mkdtempSync(join(tmpdir(), "keys-"));
    expect(keygen(dir)).toBe(0);
    const store = new KeyStore(dir);
    const old = mintToken(store.keys.signing!, claims());
    const oldKid = store.keys.signing!.kid;

    expect(keygen(dir)).toBe(0); // rotate: new signing.key, the old public key retired
    expect(readdirSync(dir).filter((f) => f.endsWith(".pub"))).toHaveLength(1);
    store.reload();
    expect(store.keys.signing!.kid).not.toBe(oldKid);
    const fresh = mintToken(store.keys.signing!, claims());
    expect(verifyToken(old, store.keys.verify).sub).toBe("t");
    expect(verifyToken(fresh, store.keys.verify).sub).toBe("t");

    // A broken key file: the last good set stays.
    const retired = readdirSync(dir).filter((f) => f.endsWith(".pub"));
    for (const f of retired) writeFileSync(join(dir, f), "");
    expect(() => loadKeys(dir)).toThrow();
    store.reload();
    expect(verifyToken(old, store.keys.verify).sub).toBe("t");

    // The retired key removed: its tokens stop verifying, the new ones do not.
    for (const f of retired) unlinkSync(join(dir, f));
    store.reload();
    expect(() => verifyToken(old, store.keys.verify)).toThrow(/unknown key/);
    expect(verifyToken(fresh, store.keys.verify).sub).toBe("t");
  });

  it("refuses a token of a key it never had", () => {
    const a = mkdtempSync(join(tmpdir(), "keys-"));
    const b = mkdtempSync(join(tmpdir(), "keys-"));
    keygen(a);
    keygen(b);
    const t = mintToken(loadKeys(a).signing!, claims());
    expect(() => verifyToken(t, loadKeys(b).verify)).toThrow(TokenError);
  });
});
