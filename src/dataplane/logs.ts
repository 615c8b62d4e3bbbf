// What every backend's logs look like to the SDK and the CLI.
import type { Readable } from "node:stream";

export interface LogOptions {
  follow?: boolean;
  /** Unix seconds or an RFC 3339 time. */
  since?: number | string;
  /** The last N lines only. */
  tail?: number;
  timestamps?: boolean;
}

/**
 * The workload's output as its runtime recorded it. Docker keeps stdout and
 * stderr apart; Kubernetes' `pods/log` interleaves them into `stdout` (and
 * `stderr` ends at once).
 */
export interface LogStreams {
  stdout: Readable;
  stderr: Readable;
  close(): void;
}
