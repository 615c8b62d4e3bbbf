// Keeps the controller told about what happens on the Docker host:
//   - the events stream (start, die, oom, health_status, destroy) of our
//     containers becomes reconciles of their sandboxes;
//   - a periodic re-list catches what a dropped stream missed, and sweeps orphans;
//   - whether the daemon answers is a readiness check, not a crash: the stream is
//     re-opened with backoff, and every sandbox is reconciled once it is back.
import type Docker from "dockerode";
import { Backoff, sleep } from "../../controller/backoff.js";
import type { Logger } from "../../observability/logger.js";
import { daemonMessage } from "./client.js";
import { DockerLabels, ownedFilter, sandboxKeyOf } from "./names.js";

export interface DockerWatcherOptions {
  docker: Docker;
  owner: string;
  /** A sandbox ("namespace/name") whose containers changed; `action` is the event's (e.g. "die"). */
  onChange(key: string, action?: string): void;
  /** The daemon answers again (or for the first time): reconcile everything. */
  onConnected(): void;
  /** The events stream is closed (the daemon went away, or the stream broke). */
  onDisconnected?(): void;
  /** Periodic work with the daemon reachable: re-list, collect orphans. */
  onSweep(): Promise<void>;
  sweepIntervalMs?: number;
  log: Logger;
}

/** Re-opening the events stream: soon after a blip, at most every 15 s during an outage. */
const RECONNECT_BACKOFF = { baseMs: 500, maxMs: 15_000 };

export class DockerWatcher {
  private stopped = false;
  private problem: string | undefined = "not connected yet";
  private stream: (NodeJS.ReadableStream & { destroy(): void }) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Aborted by stop(): cuts a reconnect wait short. */
  private readonly stopping = new AbortController();
  private readonly loop: Promise<void>;

  constructor(private readonly opts: DockerWatcherOptions) {
    this.loop = this.run();
    this.sweepTimer = setInterval(() => void this.sweep(), opts.sweepIntervalMs ?? 60_000);
    this.sweepTimer.unref();
  }

  /** Why the daemon is not usable, or undefined when it is (a /readyz check). */
  unavailable(): string | undefined {
    return this.problem;
  }

  async sweep(): Promise<void> {
    if (this.problem || this.stopped) return;
    try {
      await this.opts.onSweep();
    } catch (err) {
      this.opts.log.warn({ err: daemonMessage(err) }, "docker sweep failed");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    this.stream?.destroy();
    this.stopping.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(RECONNECT_BACKOFF);
    while (!this.stopped) {
      try {
        await this.opts.docker.ping();
        const stream = (await this.opts.docker.getEvents({
          filters: { type: ["container"], ...ownedFilter(this.opts.owner) },
        })) as unknown as NodeJS.ReadableStream & { destroy(): void };
        this.stream = stream;
        if (this.problem) this.opts.log.info("docker daemon reachable; watching events");
        this.problem = undefined;
        backoff.reset();
        this.opts.onConnected();
        void this.sweep();
        await this.consume(stream);
        if (!this.stopped) throw new Error("the events stream ended");
      } catch (err) {
        this.opts.onDisconnected?.();
        if (this.stopped) break;
        const message = daemonMessage(err);
        const delay = backoff.next();
        if (this.problem !== message) {
          this.opts.log.warn({ err: message, retryInMs: delay }, "docker daemon unavailable");
        }
        this.problem = message;
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** Newline-delimited JSON; a chunk may hold several messages or part of one. */
  private consume(stream: NodeJS.ReadableStream): Promise<void> {
    return new Promise((resolve, reject) => {
      let buffered = "";
      stream.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) this.dispatch(line);
          nl = buffered.indexOf("\n");
        }
      });
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", reject);
    });
  }

  private dispatch(line: string): void {
    try {
      const event = JSON.parse(line) as {
        Action?: string;
        status?: string;
        Actor?: { Attributes?: Record<string, string> };
      };
      const attributes = event.Actor?.Attributes;
      const key = sandboxKeyOf(attributes);
      if (key && attributes?.[DockerLabels.owner] === this.opts.owner)
        this.opts.onChange(key, event.Action ?? event.status);
    } catch {
      this.opts.log.debug({ line: line.slice(0, 200) }, "unparseable docker event");
    }
  }
}
