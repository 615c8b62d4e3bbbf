// The gateway's verbs: custom RBAC verbs on `sandboxes` (group sandboxing.dev),
// so a cluster admin grants the data plane with a plain Role, e.g.
//   rules: [{apiGroups: [sandboxing.dev], resources: [sandboxes], verbs: [exec, files]}]
// A scoped token carries a subset of the same verbs.
import { z } from "zod";

export const Verb = {
  /** Run commands: exec streams and background processes. */
  exec: "exec",
  /** Read and write the sandbox's files. */
  files: "files",
  /** Reach the sandbox's declared (private) ports. */
  connect: "connect",
  /** Read the workload's output (the runtime's log). */
  logs: "logs",
  /** Read the Sandbox resource through the gateway (a scoped token's holder has no kubeconfig). */
  get: "get",
  /** Mint scoped tokens for a sandbox (Kubernetes identities only, never a scoped token). */
  mint: "mint",
} as const;
export type Verb = (typeof Verb)[keyof typeof Verb];

/** Verbs a scoped token may carry (never mint: a token cannot breed tokens). */
export const SCOPED_VERBS = [Verb.exec, Verb.files, Verb.connect, Verb.logs, Verb.get] as const;
export const ScopedVerbSchema = z.enum(SCOPED_VERBS);
export type ScopedVerb = z.infer<typeof ScopedVerbSchema>;
