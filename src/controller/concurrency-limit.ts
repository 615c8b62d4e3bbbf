// At most `max` tasks at once; the others wait their turn in arrival order, at
// most `maxWaiting` of them: past that a task is refused, not queued, so a
// flood cannot grow memory (or a shutdown's drain) without bound.
export class ConcurrencyLimit {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {
    if (!(max >= 1)) throw new Error("max must be at least 1");
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Run `task` when a slot is free; undefined (and `task` never called) when the queue is full. */
  tryRun<T>(task: () => Promise<T>): Promise<T> | undefined {
    if (this.active < this.max) {
      this.active++;
      return this.finally(task);
    }
    if (this.queue.length >= this.maxWaiting) return undefined;
    return new Promise<void>((resolve) => this.queue.push(resolve)).then(() => this.finally(task));
  }

  private async finally<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter: a newcomer cannot take it in between.
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
