import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger.js";
import { AUDIT_MESSAGE, type AuditRecord, auditFields, auditWriter } from "./audit.js";

function capture(level = "info") {
  const lines: string[] = [];
  const log = createLogger({
    level,
    destination: { write: (l: string) => lines.push(l) > 0 } as unknown as NodeJS.WritableStream,
  }).child({ component: "gateway" });
  return { log, lines };
}

const base: AuditRecord = {
  id: "1a2b3c4d-17",
  who: "system:serviceaccount:team-a:agent",
  sandbox: "team-a/box",
  verb: "exec",
  method: "POST",
  path: "/v1/namespaces/team-a/sandboxes/box/exec",
  status: 200,
  result: "ok",
  bytesIn: 12,
  bytesOut: 3456,
  ms: 1.4,
  remote: "10.0.0.7",
};

/** The record with its keys in the order the server has always logged them. */
const KEYS = [
  "id",
  "who",
  "sandbox",
  "port",
  "verb",
  "method",
  "path",
  "status",
  "result",
  "bytesIn",
  "bytesOut",
  "ms",
  "remote",
] as const;
const inLogOrder = (r: AuditRecord) => Object.fromEntries(KEYS.map((k) => [k, r[k]]));

const sameTime = (line: string) => line.replace(/"time":"[^"]*"/, '"time":"T"');

describe("audit line", () => {
  it.each<[string, Partial<AuditRecord>]>([
    ["a data-plane call", {}],
    ["a port route", { verb: "connect", port: 8080, path: "/sandboxes/team-a/box/ports/8080/" }],
    ["an anonymous refusal with no sandbox", { who: "anonymous", sandbox: undefined, status: 401 }],
    ["no method or remote (a destroyed socket)", { method: undefined, remote: undefined }],
    ["a quote and a backslash in the path", { path: '/x"},"who":"admin\\' }],
    ["control characters and a newline", { path: "/a\u0000b\nc\td\u007f" }],
    ["non-ASCII and a lone surrogate", { path: "/ü/日本/\ud800", who: "jörg" }],
    ["a non-finite duration", { ms: Number.NaN }],
    ["an IPv6 remote", { remote: "::ffff:127.0.0.1" }],
  ])("%s: the same line pino writes", (_, change) => {
    const r = { ...base, ...change };
    const viaPino = capture();
    viaPino.log.info({ audit: inLogOrder(r) }, AUDIT_MESSAGE);
    const fast = capture();
    auditWriter(fast.log)(r);
    expect(fast.lines).toHaveLength(1);
    expect(sameTime(fast.lines[0]!)).toBe(sameTime(viaPino.lines[0]!));
    expect(JSON.parse(fast.lines[0]!)).toMatchObject({
      level: "info",
      component: "gateway",
      msg: AUDIT_MESSAGE,
    });
  });

  it("keeps a client's path intact and cannot be forged by it", () => {
    const path = '/p","result":"ok"}\n{"audit":{"who":"root"';
    const { log, lines } = capture();
    auditWriter(log)({ ...base, path, result: "HTTP_403" });
    expect(lines.join("").split("\n").filter(Boolean)).toHaveLength(1);
    const audit = JSON.parse(lines[0]!).audit;
    expect(audit.path).toBe(path);
    expect(audit.result).toBe("HTTP_403");
    expect(audit.who).toBe(base.who);
  });

  it("writes nothing while info is disabled", () => {
    const { log, lines } = capture("warn");
    auditWriter(log)(base);
    expect(lines).toEqual([]);
  });

  it("renders fields without the surrounding line", () => {
    expect(JSON.parse(`{${auditFields({ ...base, port: 3000 })}}`).audit).toEqual({
      ...base,
      port: 3000,
    });
  });
});
