// Structured JSON logs (pino). Every component takes a logger and derives child
// loggers carrying its context (component, namespace/name), so each line can be
// traced to the object it is about.
import { type Logger, pino } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to inspect them. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}

/** A logger that drops everything, for unit tests of components that require one. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
