// The key of a namespaced object everywhere in the operator: the work queue,
// the informer caches, logs. One definition, so a key built in one place finds
// the object cached in another.

export interface Named {
  metadata?: { namespace?: string; name?: string };
}

/** "namespace/name", or "name" for a cluster-scoped object. */
export function keyOf(obj: Named): string {
  const { namespace, name } = obj.metadata ?? {};
  return namespace ? `${namespace}/${name}` : `${name}`;
}
