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
   * normal exit; a SIGKILL loses at most flushMs of lines. See
   * BatchedDestination for what a slow sink does.
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
  const dest = new BatchedDestination(
    pino.destination({ sync: true, ...(batch.file ? { dest: batch.file } : {}) }),
  );
  setInterval(() => dest.flush(), batch.flushMs).unref();
  return dest;
}

/**
 * pino's destination for LoggerOptions.batch: lines are joined in memory and
 * written with one synchronous write per batch (LOG_BATCH_BYTES, or when
 * the timer flushes).
 *
 * Why not pino's asynchronous SonicBoom with a minimum length: it measures
 * its whole pending buffer (a string grown line by line, so re-flattened)
 * on every line, ~8 µs per audit line in bench/gateway/micro.ts, and when
 * the sink is slower than the lines come its pending buffer grows without
 * bound. Here memory holds one batch at most. A slow sink (a stalled stdout
 * pipe, a full disk) blocks the write, and with it the process's event
 * loop: the gateway serves at the pace its audit lines can be written, and
 * no line is dropped (sonic-boom retries EAGAIN). One write per 8 KiB
 * costs about what the thread-pool write did, without the hop.
 */
export class BatchedDestination {
  private lines: string[] = [];
  private bytes = 0;

  constructor(
    private readonly out: { write(data: string): boolean; flushSync?(): void },
    private readonly maxBytes = LOG_BATCH_BYTES,
  ) {
    pending.add(this);
  }

  write(line: string): boolean {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= this.maxBytes) this.flush();
    return true;
  }

  /** Writes what is held (synchronously). */
  flush(): void {
    if (this.lines.length === 0) return;
    const data = this.lines.length === 1 ? this.lines[0]! : this.lines.join("");
    this.lines = [];
    this.bytes = 0;
    try {
      this.out.write(data);
    } catch {} // destroyed at exit: nothing left to write to
  }
}

/** Batches still holding lines when the process exits normally write them. */
const pending = new Set<BatchedDestination>();
process.once("exit", () => {
  for (const d of pending) d.flush();
});

/**
 * A writer of one kind of line that is logged per request, for a caller that
 * has measured pino's generic serialization as a cost worth removing (the
 * gateway's audit line: ~10 µs of a proxied request's ~230 µs CPU, in
 * bench/gateway/micro.ts profiles). The caller renders its own fields as JSON
 * (`"key":value,...`); the line around them is pino's, byte for byte — level,
 * time, the logger's bindings, msg — and goes to the logger's destination
 * in order with its other lines (gateway/audit.test.ts pins both).
 *
 * Returns a no-op while `level` is disabled on the logger.
 */
export function preformattedLine(
  logger: Logger,
  level: "info" | "warn",
  msg: string,
): (fields: string) => void {
  const l = logger as unknown as Record<symbol, unknown>;
  const stream = l[pino.symbols.streamSym] as { write(line: string): unknown };
  const time = l[pino.symbols.timeSym] as () => string;
  const head = `{"level":"${level}"`;
  const tail = `,"msg":${JSON.stringify(msg)}}\n`;
  return (fields) => {
    if (!logger.isLevelEnabled(level)) return;
    const bindings = l[pino.symbols.chindingsSym] as string;
    stream.write(`${head}${time()}${bindings},${fields}${tail}`);
  };
}

/** A logger that drops everything, for unit tests of components that require one. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
