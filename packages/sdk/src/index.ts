// @sandboxing.dev/sdk: drive sandbox-operator sandboxes from TypeScript.

export type { ClaimSource } from "../../../src/api/pools.js";
export type { SandboxSpecInput as SandboxSpec } from "../../../src/api/sandbox-spec.js";
export type {
  Body,
  ExecHandle,
  ExecOptions,
  ExecResult,
  ReadOptions,
  WriteOptions,
} from "../../../src/dataplane/client.js";
export { AgentClient } from "../../../src/dataplane/client.js";
export {
  AgentError,
  ClaimFailedError,
  NotFoundError,
  PermissionDeniedError,
  ProcessStartError,
  ProtocolError,
  SandboxError,
  SandboxNotFoundError,
  SandboxNotReadyError,
  SandboxSuspendedError,
  TimeoutError,
  UnauthorizedError,
} from "../../../src/dataplane/errors.js";
export type { LogOptions, LogStreams } from "../../../src/dataplane/logs.js";
export type { ExitStatus, FileInfo, ProcessInfo } from "../../../src/dataplane/protocol.js";
export type { ClaimInfo, ClaimOptions, EgressPolicyInput } from "./claim.js";
export {
  BackgroundProcess,
  type ClientOptions,
  type CreateOptions,
  Sandbox,
} from "./sandbox.js";
