// TLS material for the controller's policy endpoint in tests: a CA and a
// serving certificate for the addresses sandbox Pods dial (openssl, as an
// installation would use its own PKI or the chart's generated CA).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PolicyTls {
  cert: string;
  key: string;
  ca: string;
  dir: string;
}

/** A serving certificate for `ips` and `names` (the chart's names only the Service's DNS name). */
export function policyTls(ips: string[], names: string[] = []): PolicyTls {
  const dir = mkdtempSync(join(tmpdir(), "policy-tls-"));
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("ca.key")]);
  ssl([
    "req",
    "-x509",
    "-new",
    "-key",
    f("ca.key"),
    "-subj",
    "/CN=sandbox-policy-ca",
    "-days",
    "2",
    "-out",
    f("ca.crt"),
  ]);
  ssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("tls.key")]);
  ssl(["req", "-new", "-key", f("tls.key"), "-subj", "/CN=sandbox-policy", "-out", f("tls.csr")]);
  writeFileSync(
    f("ext.cnf"),
    `subjectAltName=${[...ips.map((ip) => `IP:${ip}`), ...names.map((n) => `DNS:${n}`)].join(",")}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`,
  );
  ssl([
    "x509",
    "-req",
    "-in",
    f("tls.csr"),
    "-CA",
    f("ca.crt"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    f("ext.cnf"),
    "-out",
    f("tls.crt"),
  ]);
  const read = (n: string) => readFileSync(f(n), "utf8");
  return { cert: read("tls.crt"), key: read("tls.key"), ca: read("ca.crt"), dir };
}
