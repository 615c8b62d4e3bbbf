import { describe, expect, it } from "vitest";
import { readCondition, readSandbox, readStatus, SandboxReader } from "./read.js";

const base = {
  metadata: { name: "s", namespace: "ns", uid: "u", generation: 3 },
  spec: { image: "busybox", lifetime: { ttlSeconds: 60, onExpire: "Retain" } },
};

describe("readSandbox", () => {
  it("reports an invalid spec by the field's own path, and still reads the lifetime", () => {
    const view = readSandbox({
      ...base,
      spec: { ...base.spec, image: "two words", backend: "docker" },
    });
    expect(view.spec).toBeUndefined();
    expect(view.invalid).toMatch(/^spec\.image: /);
    expect(view.lifetime).toEqual({ ttlSeconds: 60, onExpire: "Retain" });
    expect(view.backend).toBe("docker");
  });

  it("never blames the spec for the status", () => {
    const view = readSandbox({ ...base, status: { finishedAt: "2024-01-01t00:00:00x" } });
    expect(view.invalid).toBeUndefined();
    expect(view.spec?.image).toBe("busybox");
  });
});

describe("SandboxReader", () => {
  it("reads an object once, and a new version of it afresh", () => {
    const reader = new SandboxReader();
    const stored = { ...base, status: { phase: "Pending" } };
    const first = reader.read("ns/s", stored);
    expect(reader.read("ns/s", stored)).toBe(first);
    const next = { ...base, status: { phase: "Running" } };
    expect(reader.read("ns/s", next)).not.toBe(first);
    expect(reader.read("ns/s", next).status?.phase).toBe("Running");
  });

  it("parses the spec again only for a new generation or UID", () => {
    const reader = new SandboxReader();
    const at = (generation: number, uid = "u", status = {}) => ({
      metadata: { ...base.metadata, uid, generation },
      spec: { ...base.spec },
      status,
    });
    const first = reader.read("ns/s", at(3)).spec;
    expect(first?.image).toBe("busybox");
    // Our own status write: a new object at the same generation.
    const afterWrite = reader.read("ns/s", at(3, "u", { phase: "Running" }));
    expect(afterWrite.spec).toBe(first);
    expect(afterWrite.status?.phase).toBe("Running");
    expect(reader.read("ns/s", at(4)).spec).not.toBe(first);
    const recreated = reader.read("ns/s", at(4, "u2")).spec;
    expect(recreated).toEqual(first);
    expect(reader.read("ns/s", at(4, "u2")).spec).toBe(recreated);
    reader.forget("ns/s");
    expect(reader.read("ns/s", at(4, "u2")).spec).not.toBe(recreated);
  });
});

describe("readStatus", () => {
  it("keeps what it can read and drops the rest, field by field and condition by condition", () => {
    const ok = {
      type: "Ready",
      status: "True",
      reason: "Running",
      message: "",
      lastTransitionTime: "2024-01-01t00:00:00z",
    };
    const status = readStatus({
      phase: "Succeeded",
      finishedAt: "yesterday",
      startedAt: "2024-01-01T00:00:00.5+01:00",
      observedGeneration: 2 ** 63,
      exitCode: 3,
      conditions: [ok, { ...ok, type: "Expired", observedGeneration: 2 ** 63 }, "junk"],
      unknownField: 1,
    });
    expect(status).toEqual({
      phase: "Succeeded",
      startedAt: "2024-01-01T00:00:00.5+01:00",
      exitCode: 3,
      conditions: [ok],
    });
  });

  it("reads no status from something that is not an object", () => {
    expect(readStatus(undefined)).toBeUndefined();
    expect(readStatus("x")).toBeUndefined();
    expect(readStatus([])).toBeUndefined();
  });
});

describe("readCondition", () => {
  const ok = {
    type: "Ready",
    status: "True",
    reason: "PodRunning",
    message: "running",
    lastTransitionTime: "2024-01-01T00:00:00Z",
    observedGeneration: 1,
  };
  // Each case is read twice: the second read comes from the memo and must agree.
  it.each([
    ["a valid condition", ok, ok],
    [
      "an absent observedGeneration",
      { ...ok, observedGeneration: undefined },
      { ...ok, observedGeneration: undefined },
    ],
    [
      "a null observedGeneration (not the same as absent)",
      { ...ok, observedGeneration: null },
      undefined,
    ],
    ["observedGeneration as a string", { ...ok, observedGeneration: "1" }, undefined],
    ["a bad reason", { ...ok, reason: "not camel" }, undefined],
    ["a bad time", { ...ok, lastTransitionTime: "yesterday" }, undefined],
    ["an unknown field (dropped)", { ...ok, extra: { a: 1 } }, ok],
    [
      "a message holding the memo's separator",
      { ...ok, message: "a\n1\n" },
      { ...ok, message: "a\n1\n" },
    ],
    ["not an object", "junk", undefined],
    ["null", null, undefined],
  ])("%s", (_, raw, want) => {
    const first = readCondition(raw);
    const second = readCondition(structuredClone(raw));
    if (want === undefined) {
      expect(first).toBeUndefined();
      expect(second).toBeUndefined();
    } else {
      expect(first).toEqual(want);
      expect(second).toBe(first);
    }
  });

  it("shares frozen results: no reader can change another's", () => {
    const c = readCondition({ ...ok, type: "Frozen" })!;
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("tells a valid condition from an invalid one whose fields print alike", () => {
    // "~" marks an absent field; a message of "~" is JSON "\"~\"", a different key.
    expect(readCondition({ ...ok, type: "Tilde", message: undefined })).toBeUndefined();
    expect(readCondition({ ...ok, type: "Tilde", message: "~" })?.message).toBe("~");
  });
});
