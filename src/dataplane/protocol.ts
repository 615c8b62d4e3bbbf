// The agent's wire protocol (docs/agent-protocol.md) as zod schemas: the
// client validates every JSON answer with them, and the SDK's types come from
// them. Go's side is agent/internal; a change here is a change there.
import { z } from "zod";

/** The agent's port in the sandbox's network namespace (beside the egress sidecar's 150xx ports). */
export const AGENT_PORT = 15099;
export const PROTOCOL_VERSION = 1;
/** Environment variable the agent reads its credential from (and removes). */
export const AGENT_TOKEN_ENV = "SANDBOX_AGENT_TOKEN";

export const FrameType = {
  spec: 0x00,
  stdin: 0x01,
  stdinEof: 0x02,
  resize: 0x03,
  signal: 0x04,
  started: 0x10,
  stdout: 0x11,
  stderr: 0x12,
  exit: 0x13,
  error: 0x14,
} as const;
export const MAX_FRAME_PAYLOAD = 1 << 20;

export const TtySizeSchema = z.object({
  cols: z.int().min(1).max(65535),
  rows: z.int().min(1).max(65535),
});
export type TtySize = z.infer<typeof TtySizeSchema>;

export const ExecSpecSchema = z.object({
  argv: z.array(z.string()).min(1, "argv: at least the program to run"),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().optional(),
  timeoutMs: z.int().min(0).optional(),
  stdin: z.boolean().optional(),
  tty: TtySizeSchema.optional(),
  outputLimitBytes: z
    .int()
    .min(0)
    .max(16 << 20)
    .optional(),
});
export type ExecSpec = z.infer<typeof ExecSpecSchema>;

export const ExitStatusSchema = z.object({
  exitCode: z.int().nullable(),
  signal: z.string().optional(),
  timedOut: z.boolean(),
  durationMs: z.int(),
});
export type ExitStatus = z.infer<typeof ExitStatusSchema>;

export const StartedSchema = z.object({ id: z.string(), pid: z.int() });

export const ProcessInfoSchema = z.object({
  id: z.string(),
  pid: z.int(),
  argv: z.array(z.string()),
  cwd: z.string().optional(),
  tty: z.boolean(),
  background: z.boolean(),
  startedAt: z.string(),
  running: z.boolean(),
  exit: ExitStatusSchema.optional(),
  stdoutBytes: z.int(),
  stderrBytes: z.int(),
});
export type ProcessInfo = z.infer<typeof ProcessInfoSchema>;
export const ProcessListSchema = z.object({ processes: z.array(ProcessInfoSchema) });

export const OutputChunkSchema = z.object({ data: z.base64(), start: z.int(), end: z.int() });
export const ProcessOutputSchema = z.object({
  stdout: OutputChunkSchema,
  stderr: OutputChunkSchema,
  running: z.boolean(),
  exit: ExitStatusSchema.nullish(),
});
export type ProcessOutput = z.infer<typeof ProcessOutputSchema>;

export const FileInfoSchema = z.object({
  path: z.string(),
  name: z.string(),
  type: z.enum(["file", "dir", "symlink", "other"]),
  size: z.int(),
  mode: z.int(),
  modTime: z.string(),
  uid: z.int(),
  gid: z.int(),
  target: z.string().optional(),
});
export type FileInfo = z.infer<typeof FileInfoSchema>;
export const FileListSchema = z.object({ path: z.string(), entries: z.array(FileInfoSchema) });
export const WriteResultSchema = z.object({ path: z.string(), bytes: z.int() });
export const UntarSummarySchema = z.object({ files: z.int(), dirs: z.int(), bytes: z.int() });

export const VersionSchema = z.object({
  version: z.string(),
  protocol: z.int(),
  pid: z.int(),
  uid: z.int(),
  gid: z.int(),
  cwd: z.string(),
  startedAt: z.string(),
});
export type AgentVersion = z.infer<typeof VersionSchema>;

export const ErrorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), path: z.string().optional() }),
});

/**
 * GET /v1/activity: how long the sandbox has gone unused, on the agent's
 * monotonic clock (docs/idle.md). Reading it is not use.
 */
export const ActivitySchema = z.object({
  idleMs: z.int().min(0),
  inFlight: z.int().min(0),
  calls: z.int().min(0),
});
export type Activity = z.infer<typeof ActivitySchema>;
