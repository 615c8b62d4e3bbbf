// The acknowledgements this replica's policy endpoint received, by Pod UID:
// the policy digest each sandbox Pod's sidecar last confirmed having applied.
//
// The same fact the endpoint records on the Pod (POLICY_APPLIED_ANNOTATION),
// known here a Pod write and its watch event sooner: the pod backend reads
// both, so a claim's sandbox reports its policy in force as soon as the
// sidecar says so, while the Pod write (which carries the fact across a
// restart and to whichever replica leads) goes on beside the status write.
// Only what the endpoint accepted is recorded: an authenticated sidecar, its
// own Pod (UID), the policy in force at that moment (src/policy-server/decide.ts).

/** Pods remembered; the oldest are forgotten first (their Pod annotation still says it). */
export const APPLIED_MAX = 20_000;

export class AppliedPolicies {
  /** Pod UID -> policy digest, in least-recently-recorded order. */
  private readonly byPod = new Map<string, string>();

  constructor(private readonly max = APPLIED_MAX) {}

  record(podUid: string, hash: string): void {
    this.byPod.delete(podUid);
    this.byPod.set(podUid, hash);
    if (this.byPod.size > this.max) {
      const oldest = this.byPod.keys().next().value;
      if (oldest !== undefined) this.byPod.delete(oldest);
    }
  }

  /** The digest this Pod's sidecar last acknowledged here, if any. */
  get(podUid: string): string | undefined {
    return this.byPod.get(podUid);
  }
}
