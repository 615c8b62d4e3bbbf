// Collect a pino logger's JSON lines in memory (tests read decisions from them).
import { Writable } from "node:stream";
import type { Logger } from "pino";
import { createLogger } from "../../../src/observability/logger.js";

export interface CapturedLog {
  logger: Logger;
  lines: Record<string, unknown>[];
}

export function captureLog(): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: "debug", destination: stream }), lines };
}
