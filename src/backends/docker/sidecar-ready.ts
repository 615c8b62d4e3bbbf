// Whether a started sidecar has installed the lockdown and bound its listeners.
// The sidecar says so in one log line; reading its log since its last start is
// cheaper than a health-check exec every few seconds per sandbox, and exact: the
// workload is created only after that line, so it never runs unfenced.
import type Docker from "dockerode";
import { SIDECAR_READY_MESSAGE } from "./containers.js";

export async function waitForSidecarReady(
  container: Docker.Container,
  startedAt: string,
  timeoutMs: number,
): Promise<boolean> {
  const since = Math.floor(Date.parse(startedAt) / 1000);
  const stream = (await container.logs({
    follow: true,
    stdout: true,
    stderr: true,
    since,
  })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  return new Promise<boolean>((resolve) => {
    let seen = "";
    const finish = (ready: boolean) => {
      clearTimeout(timer);
      stream.removeAllListeners("data");
      stream.destroy();
      resolve(ready);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    stream.on("data", (chunk: Buffer) => {
      // Keep a tail only: the message may straddle two chunks.
      seen = (seen + chunk.toString("latin1")).slice(-4096);
      if (seen.includes(SIDECAR_READY_MESSAGE)) finish(true);
    });
    stream.on("end", () => finish(seen.includes(SIDECAR_READY_MESSAGE)));
    stream.on("error", () => finish(false));
  });
}
