// The coordination.k8s.io/v1 Lease as both electors (leader-election.ts,
// shard-elector.ts) read and write it over raw requests: times stay
// metav1.MicroTime strings (see microTime in raw-request.ts).

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number | null;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec?: LeaseSpec;
}
