// Signing and verification keys for scoped tokens, from a directory (a
// Secret mounted as a volume; the kubelet updates the files in place when the
// Secret changes, so rotation needs no restart and no RBAC on Secrets):
//
//   signing.key   PEM Ed25519 private key: signs new tokens (its public half verifies)
//   *.pub         PEM Ed25519 public keys: still verify tokens signed before a rotation
//
// Rotation: add the new private key as signing.key and keep the old public
// key as old-<date>.pub until the longest token lifetime has passed. A key's
// ID is derived from the public key, so replicas agree on it without shared state.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { SigningKey } from "./tokens.js";

export const SIGNING_KEY_FILE = "signing.key";

export function keyId(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("base64url")
    .slice(0, 16);
}

/** The signing key of a PEM private key (what helm's genPrivateKey "ed25519" writes). */
export function loadKeysFromPem(pem: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== "ed25519") throw new Error("not an Ed25519 private key");
  return { kid: keyId(createPublicKey(privateKey)), privateKey };
}

export interface KeySet {
  signing?: SigningKey;
  verify: Map<string, KeyObject>;
}

/** Reads the key directory; a file that is not an Ed25519 key is an error naming it. */
export function loadKeys(dir: string): KeySet {
  const verify = new Map<string, KeyObject>();
  let signing: SigningKey | undefined;
  for (const file of readdirSync(dir).sort()) {
    const path = join(dir, file);
    // Secret volumes hold ..data symlinks and timestamped directories: keys are the top-level files.
    if (file.startsWith(".") || !statSync(path).isFile()) continue;
    if (file === SIGNING_KEY_FILE) {
      const privateKey = createPrivateKey(readFileSync(path));
      if (privateKey.asymmetricKeyType !== "ed25519")
        throw new Error(`${path}: not an Ed25519 private key`);
      const pub = createPublicKey(privateKey);
      signing = { kid: keyId(pub), privateKey };
      verify.set(signing.kid, pub);
    } else if (file.endsWith(".pub")) {
      const pub = createPublicKey(readFileSync(path));
      if (pub.asymmetricKeyType !== "ed25519")
        throw new Error(`${path}: not an Ed25519 public key`);
      verify.set(keyId(pub), pub);
    }
  }
  return { ...(signing ? { signing } : {}), verify };
}

/** A fresh key pair as the Secret's files (for `gateway keygen` and tests). */
export function generateKeyFiles(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** Keeps a KeySet current: re-reads the directory every intervalMs, keeping the last good set on error. */
export class KeyStore {
  private current: KeySet;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.current = loadKeys(dir);
  }

  get keys(): KeySet {
    return this.current;
  }

  reload(): void {
    try {
      this.current = loadKeys(this.dir);
    } catch (err) {
      this.onError(err);
    }
  }

  start(intervalMs = 10_000): void {
    this.timer ??= setInterval(() => this.reload(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
