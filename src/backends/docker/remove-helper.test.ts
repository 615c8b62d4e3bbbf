import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { removeHelper } from "./snapshots.js";

const httpError = (statusCode: number) =>
  Object.assign(new Error(`HTTP ${statusCode}`), { statusCode });

/** A container whose removals answer `answers` in turn (undefined: removed). */
function container(answers: (number | undefined)[]) {
  let calls = 0;
  const c = {
    remove: async () => {
      const a = answers[Math.min(calls++, answers.length - 1)];
      if (a !== undefined) throw httpError(a);
    },
  };
  return { c: c as unknown as Docker.Container, calls: () => calls };
}

describe("removeHelper", () => {
  it.each([
    { name: "removed at once", answers: [undefined], calls: 1 },
    { name: "already gone", answers: [404], calls: 1 },
    { name: "held (409) twice, then removed", answers: [409, 409, undefined], calls: 3 },
    { name: "removal in progress (409), then gone (404)", answers: [409, 404], calls: 2 },
  ])("$name: resolves once it is gone", async ({ answers, calls }) => {
    const f = container(answers);
    await removeHelper(f.c, 5, 1);
    expect(f.calls()).toBe(calls);
  });

  it("gives up after its attempts when the daemon keeps answering 409", async () => {
    const f = container([409]);
    await expect(removeHelper(f.c, 3, 1)).rejects.toMatchObject({ statusCode: 409 });
    expect(f.calls()).toBe(3);
  });

  it("does not wait out other errors", async () => {
    const f = container([500]);
    await expect(removeHelper(f.c, 5, 1)).rejects.toMatchObject({ statusCode: 500 });
    expect(f.calls()).toBe(1);
  });
});
