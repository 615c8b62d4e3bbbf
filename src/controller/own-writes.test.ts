import { describe, expect, it } from "vitest";
import { OwnWrites } from "./own-writes.js";

const v = (name: string, resourceVersion?: string, namespace = "ns") => ({
  metadata: { namespace, name, resourceVersion },
});

describe("OwnWrites", () => {
  it.each([
    ["the version written", [v("a", "5")], v("a", "5"), true],
    ["an older version (an event still in flight)", [v("a", "5")], v("a", "4"), false],
    ["a newer version (someone else's change)", [v("a", "5")], v("a", "6"), false],
    ["the same name in another namespace", [v("a", "5")], v("a", "5", "other"), false],
    ["an object never written", [], v("a", "5"), false],
    ["a version superseded by our next write", [v("a", "5"), v("a", "7")], v("a", "5"), false],
    ["the last of two writes", [v("a", "5"), v("a", "7")], v("a", "7"), true],
    ["an event without a version", [v("a", "5")], v("a"), false],
  ])("%s: echo=%s", (_, writes, event, echo) => {
    const w = new OwnWrites();
    for (const x of writes) w.record(x);
    expect(w.isEcho(event)).toBe(echo);
  });

  it("consumes a match: the same version again is not skipped twice", () => {
    const w = new OwnWrites();
    w.record(v("a", "5"));
    expect(w.isEcho(v("a", "5"))).toBe(true);
    expect(w.isEcho(v("a", "5"))).toBe(false);
  });

  it("an older event keeps the entry for the echo that follows it", () => {
    const w = new OwnWrites();
    w.record(v("a", "5"));
    expect(w.isEcho(v("a", "4"))).toBe(false);
    expect(w.isEcho(v("a", "5"))).toBe(true);
  });

  it("keeps at most max entries, dropping the oldest", () => {
    const w = new OwnWrites(2);
    w.record(v("a", "1"));
    w.record(v("b", "2"));
    w.record(v("c", "3"));
    expect(w.size).toBe(2);
    expect(w.isEcho(v("a", "1"))).toBe(false);
    expect(w.isEcho(v("c", "3"))).toBe(true);
  });
});
