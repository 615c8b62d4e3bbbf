// A throwaway self-signed certificate for the test servers' names, made with
// the openssl CLI (node:crypto cannot issue X.509 certificates).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

export function makeTestCert(
  names: string[],
  dir = mkdtempSync(join(tmpdir(), "egress-cert-")),
): TestCert {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=egress-test",
      "-addext",
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ],
    { stdio: "pipe" },
  );
  return { certPath, keyPath, cert: readFileSync(certPath), key: readFileSync(keyPath) };
}
