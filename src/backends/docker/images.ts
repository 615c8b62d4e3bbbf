// Images are pulled in the background, once per image however many sandboxes
// wait for it, so a slow registry never holds a reconcile worker. A failed pull
// is remembered for a while (the sandboxes report ImagePullFailed with the
// daemon's words) and retried after that.
import type Docker from "dockerode";
import { daemonMessage, orUndefined } from "./client.js";

export type ImageState =
  | { state: "present" }
  | { state: "pulling" }
  | { state: "failed"; message: string };

interface Pull {
  done?: { ok: true } | { ok: false; message: string; at: number };
  waiting: Set<string>;
}

export class ImagePuller {
  private readonly pulls = new Map<string, Pull>();

  constructor(
    private readonly docker: Docker,
    /** Called with each key that waited for an image once its pull ends. */
    private readonly onPulled: (key: string) => void,
    private readonly retryAfterMs = 30_000,
  ) {}

  async ensure(image: string, key: string): Promise<ImageState> {
    if (await orUndefined(this.docker.getImage(image).inspect())) {
      this.pulls.delete(image);
      return { state: "present" };
    }
    const pull = this.pulls.get(image);
    const failed = pull?.done && !pull.done.ok ? pull.done : undefined;
    if (failed && Date.now() - failed.at < this.retryAfterMs) {
      return { state: "failed", message: failed.message };
    }
    if (pull && !pull.done) {
      pull.waiting.add(key);
      return { state: "pulling" };
    }
    this.start(image, key);
    return { state: "pulling" };
  }

  private start(image: string, key: string): void {
    const pull: Pull = { waiting: new Set([key]) };
    this.pulls.set(image, pull);
    const finish = (done: Pull["done"]) => {
      pull.done = done;
      for (const k of pull.waiting) this.onPulled(k);
      pull.waiting.clear();
    };
    this.docker
      .pull(image)
      .then(
        (stream) =>
          new Promise<void>((resolve, reject) => {
            this.docker.modem.followProgress(
              stream as NodeJS.ReadableStream,
              (err: Error | null, output: Array<{ error?: string }>) => {
                const failure = err ?? output.find((o) => o.error)?.error;
                if (failure) reject(failure);
                else resolve();
              },
            );
          }),
      )
      .then(
        () => finish({ ok: true }),
        (err) => finish({ ok: false, message: daemonMessage(err), at: Date.now() }),
      );
  }
}
