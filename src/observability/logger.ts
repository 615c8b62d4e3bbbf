// Structured JSON logs (pino). Every component takes a logger and derives child
// loggers carrying its context (component, namespace/name), so each line can be
// traced to the object it is about.
import { type Logger, pino } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to inspect them. */
  destination?: NodeJS.WritableStream;
  /**
   * Write lines in batches (up to LOG_BATCH_BYTES, at least every flushMs)
   * instead of one write per line. For a process that logs per request (the
   * gateway's audit line): one write and a thread-pool hop per line was a
   * tenth of its CPU per proxied request. What is pending is written on a
   * normal exit; a SIGKILL loses at most flushMs of lines.
   */
  batch?: { flushMs: number /** A file instead of stdout. */; file?: string };
}

/** Largest batch of lines held before a write (with LoggerOptions.batch). */
export const LOG_BATCH_BYTES = 8192;

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? "info",
      base: undefined,
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? batched(opts.batch),
  );
}

/**
 * pino's isoTime, formatting each second once: `Date#toISOString` per line
 * was ~2% of the gateway's CPU per proxied request (one audit line each).
 */
let isoSecond = -1;
let isoPrefix = "";
export function isoTime(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
  }
  const ms = now - second * 1000;
  return `,"time":"${isoPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z"`;
}

function batched(batch: LoggerOptions["batch"]) {
  if (!batch) return pino.destination({ sync: false });
  const dest = pino.destination({
    sync: false,
    minLength: LOG_BATCH_BYTES,
    ...(batch.file ? { dest: batch.file } : {}),
  });
  setInterval(() => {
    try {
      dest.flush();
    } catch {} // destroyed at exit: nothing left to write
  }, batch.flushMs).unref();
  return dest;
}

/** A logger that drops everything, for unit tests of components that require one. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
