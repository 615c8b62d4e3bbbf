// The benchmarks' view of their claims: one watch on the namespace's claims,
// reopened when it ends (the apiserver may close it), and a slow poll of the
// claims still awaited, which finds a Ready event the watch missed all the
// same (a hang otherwise).
import * as k8s from "@kubernetes/client-node";
import { CLAIM_PLURAL, GROUP, VERSION } from "../../src/api/group.js";

/** Hands every claim seen to `onClaim` until the returned stop is called. */
export async function followClaims<C>(
  kc: k8s.KubeConfig,
  namespace: string,
  awaited: () => Iterable<string>,
  onClaim: (claim: C) => void,
): Promise<() => void> {
  const objects = kc.makeApiClient(k8s.CustomObjectsApi);
  let stopped = false;
  let watch: AbortController | undefined;
  const openWatch = async (): Promise<void> => {
    watch = await new k8s.Watch(kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${CLAIM_PLURAL}`,
      {},
      (_type, obj) => onClaim(obj),
      () => {
        if (!stopped) void openWatch();
      },
    );
  };
  await openWatch();
  const poll = setInterval(async () => {
    for (const name of awaited()) {
      const c = (await objects
        .getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: CLAIM_PLURAL,
          name,
        })
        .catch(() => undefined)) as C | undefined;
      if (c) onClaim(c);
    }
  }, 2000);
  return () => {
    stopped = true;
    clearInterval(poll);
    watch?.abort();
  };
}
