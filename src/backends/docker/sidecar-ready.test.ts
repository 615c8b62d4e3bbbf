import { PassThrough } from "node:stream";
import type Docker from "dockerode";
import type { ContainerInspectInfo } from "dockerode";
import { describe, expect, it } from "vitest";
import { SIDECAR_READY_MESSAGE } from "./containers.js";
import { logsSince, readySince, SidecarReadiness, SidecarSlowError } from "./sidecar-ready.js";

describe("logsSince", () => {
  it.each([
    ["2026-01-01T00:00:00Z", "1767225600.000000000"],
    ["2026-01-01T00:00:00.5Z", "1767225600.500000000"],
    ["2026-01-01T00:00:01.123456789Z", "1767225601.123456789"],
  ])("%s -> %s (to the nanosecond: a restart's log holds the last run's lines)", (t, since) => {
    expect(logsSince(t)).toBe(since);
  });
});

describe("readySince", () => {
  it("reads a never-finished container's whole log: its ready line may predate StartedAt", () => {
    expect(readySince({ FinishedAt: "0001-01-01T00:00:00Z" })).toBe("0");
    expect(readySince({})).toBe("0");
  });

  it("starts after the previous run's end for a restarted container, to the nanosecond", () => {
    expect(readySince({ FinishedAt: "2026-01-01T00:00:01.123456789Z" })).toBe(
      "1767225601.123456789",
    );
  });
});

describe("SidecarReadiness.wait", () => {
  const startedAt = "2026-01-01T00:00:00.5Z";
  const sidecar = {
    Id: "abc",
    Name: "/sbx.ns.x.egress",
    State: { Running: true, StartedAt: startedAt },
  } as unknown as ContainerInspectInfo;
  // A daemon whose log stream says `lines` and stays open, and whose inspect says `now`.
  const daemon = (lines: string[], now: { Running: boolean; StartedAt: string }) =>
    ({
      getContainer: () => ({
        logs: async () => {
          const stream = new PassThrough();
          for (const l of lines) stream.write(`${l}\n`);
          return stream;
        },
        inspect: async () => ({ State: now }),
      }),
    }) as unknown as Docker;

  it("is true once the ready line is logged, and remembers this start", async () => {
    const r = new SidecarReadiness(
      daemon(["starting", SIDECAR_READY_MESSAGE], sidecar.State),
      1000,
    );
    expect(await r.wait(sidecar)).toBe(true);
    expect(r.seen(sidecar)).toBe(true);
  });

  it("says slow (SidecarSlowError, retried soon by the backend) when it runs but stays silent, not a generic error left to the growing failure backoff", async () => {
    const r = new SidecarReadiness(daemon(["starting"], sidecar.State), 20);
    await expect(r.wait(sidecar)).rejects.toBeInstanceOf(SidecarSlowError);
    expect(r.seen(sidecar)).toBe(false);
  });

  it("is false when the sidecar stopped or started again meanwhile", async () => {
    const stopped = new SidecarReadiness(daemon([], { Running: false, StartedAt: startedAt }), 20);
    expect(await stopped.wait(sidecar)).toBe(false);
    const again = new SidecarReadiness(
      daemon([], { Running: true, StartedAt: "2026-01-01T00:00:09Z" }),
      20,
    );
    expect(await again.wait(sidecar)).toBe(false);
  });
});
