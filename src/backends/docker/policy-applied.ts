// Whether a docker sandbox's sidecar has put the policy of the Sandbox's
// current generation in force. Pure; the shell is PolicyAcks and the backend.
//
// With a host policy directory (a local daemon) the sidecar acknowledges every
// load of its policy file (src/egress/policy-ack.ts), and egress is ready only
// once the acknowledgement names the digest of the file this generation wrote:
// a claim's Ready, or a narrowed policy's, then means the sidecar enforces it,
// not merely that the file was written. No timeout turns a missing
// acknowledgement into Ready: a guess would be the very lie this removes. A
// sidecar that never acknowledges (one too old for the flag exits at start on
// it, and says so in its log) leaves the sandbox not Ready, with the reason.
//
// Two cases keep the behaviour from before acknowledgements, each said in the
// condition's message: a remote daemon (the policy is uploaded through the
// daemon and nothing comes back), and a sidecar created by an earlier
// controller without the flag (left running rather than recreated, which
// would restart its workload).
import { ackAnswers, type PolicyAckRecord } from "../../egress/policy-ack.js";

/** How the running sidecar reports the policy it applied. */
export type AckMode =
  /** It acknowledges each load in its acknowledgement file. */
  | "acknowledged"
  /** No host policy directory (a remote daemon): the policy is uploaded and not acknowledged. */
  | "remote"
  /** It was created before acknowledgements (its command lacks the flag). */
  | "legacy";

export interface PolicyAppliedInput {
  mode: AckMode;
  /** The digest of the policy file this generation wrote. */
  want: string;
  /** The acknowledgement as last read (undefined: none yet, or torn). */
  record?: PolicyAckRecord;
  generation: number;
  /** The acknowledgement was waited for this long, in vain (undefined: not waited). */
  waitedMs?: number;
}

export interface PolicyApplied {
  applied: boolean;
  message: string;
}

const SERVES = "the lockdown is installed and the sidecar serves the policy";

export function policyApplied(i: PolicyAppliedInput): PolicyApplied {
  const gen = `generation ${i.generation}`;
  if (i.mode === "remote") {
    return {
      applied: true,
      message: `${SERVES} (uploaded through the Docker daemon, as with a remote one: written, not acknowledged as applied)`,
    };
  }
  if (i.mode === "legacy") {
    return {
      applied: true,
      message: `${SERVES} (this sidecar predates policy acknowledgements: written, not acknowledged as applied)`,
    };
  }
  const r = i.record;
  if (r && r.sha256 === i.want && r.applied) {
    return {
      applied: true,
      message: `${SERVES}; the sidecar acknowledged the policy of ${gen}`,
    };
  }
  if (r && !r.applied && ackAnswers(r, i.want)) {
    const what = r.sha256 ? `refused the policy of ${gen}` : "cannot read its policy file";
    return {
      applied: false,
      message: `the egress sidecar ${what}: ${r.error ?? "no reason given"}; it denies all egress until a valid policy arrives`,
    };
  }
  const late =
    i.waitedMs === undefined
      ? ""
      : `; not acknowledged ${i.waitedMs} ms after it was written (a loaded host, or see the sidecar's log)`;
  return {
    applied: false,
    message: `waiting for the egress sidecar to apply the policy of ${gen}; the previous one stays in force meanwhile${late}`,
  };
}
