// Another component's informer, shared: the same cache and watch read by a
// second controller instead of a second watch and cache of the same objects.
// Whoever made it starts and stops it; the borrower's start and stop leave it
// alone (a borrower stopping first must not end the owner's watch).
import type { EventHandler, KubeObject, ObjectSource } from "./informer.js";

export function borrowed<T extends KubeObject>(source: ObjectSource<T>): ObjectSource<T> {
  return {
    on: (handler: EventHandler<T>) => source.on(handler),
    start: () => {},
    stop: async () => {},
    hasSynced: () => source.hasSynced(),
    upToDate: (signal: AbortSignal) => source.upToDate(signal),
    problems: () => source.problems(),
    get: (key: string) => source.get(key),
    list: () => source.list(),
  };
}
