import type { ContainerInspectInfo } from "dockerode";
import { describe, expect, it } from "vitest";
import { ContainerObservations, invalidates } from "./container-observations.js";

const info = (id: string) => ({ Id: id }) as ContainerInspectInfo;
const pair = { sidecar: info("s"), workload: info("w") };

describe("ContainerObservations", () => {
  it("keeps nothing and serves nothing until the events stream is open", () => {
    const o = new ContainerObservations();
    o.keep("ns/a", "u1", o.mark(), pair);
    expect(o.get("ns/a", "u1")).toBeUndefined();
    o.connected();
    o.keep("ns/a", "u1", o.mark(), pair);
    expect(o.get("ns/a", "u1")).toEqual(pair);
  });

  it("serves an entry only to the same incarnation", () => {
    const o = new ContainerObservations();
    o.connected();
    o.keep("ns/a", "u1", o.mark(), pair);
    expect(o.get("ns/a", "u2")).toBeUndefined();
  });

  it("drops an entry on an event about its sandbox, not about another", () => {
    const o = new ContainerObservations();
    o.connected();
    o.keep("ns/a", "u1", o.mark(), pair);
    o.keep("ns/b", "u2", o.mark(), pair);
    o.changed("ns/a");
    expect(o.get("ns/a", "u1")).toBeUndefined();
    expect(o.get("ns/b", "u2")).toEqual(pair);
  });

  it("does not keep a read an event overtook", () => {
    const o = new ContainerObservations();
    o.connected();
    const mark = o.mark();
    o.changed("ns/a"); // while the inspects were on their way
    o.keep("ns/a", "u1", mark, pair);
    expect(o.get("ns/a", "u1")).toBeUndefined();
    // The next read, started after the event, is kept.
    o.keep("ns/a", "u1", o.mark(), pair);
    expect(o.get("ns/a", "u1")).toEqual(pair);
  });

  it("forgets everything when the stream closes or opens again", () => {
    for (const gap of ["disconnected", "connected"] as const) {
      const o = new ContainerObservations();
      o.connected();
      const before = o.mark();
      o.keep("ns/a", "u1", before, pair);
      o[gap]();
      expect(o.get("ns/a", "u1")).toBeUndefined();
      if (gap === "connected") {
        // A read that started before the stream opened again is not kept either.
        o.keep("ns/a", "u1", before, pair);
        expect(o.get("ns/a", "u1")).toBeUndefined();
      }
    }
  });

  it("forgets a removed sandbox", () => {
    const o = new ContainerObservations();
    o.connected();
    o.keep("ns/a", "u1", o.mark(), pair);
    o.forget("ns/a");
    expect(o.get("ns/a", "u1")).toBeUndefined();
  });
});

describe("invalidates", () => {
  it.each([
    ["start", true],
    ["die", true],
    ["destroy", true],
    ["health_status: healthy", true],
    ["rename", true],
    [undefined, true],
    ["exec_start: /.sandbox/sandbox-agent", false],
    ["exec_create: sh -c echo", false],
    ["exec_die", false],
    ["extract-to-dir", false],
    ["archive-path", false],
  ] as const)("%s -> %s", (action, want) => {
    expect(invalidates(action)).toBe(want);
  });
});
