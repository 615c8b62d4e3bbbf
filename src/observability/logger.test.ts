import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BatchedDestination, createLogger, isoTime } from "./logger.js";

describe("isoTime: pino's timestamp, each second formatted once", () => {
  const base = Date.UTC(2026, 10, 30, 23, 59, 59);
  it.each([0, 1, 9, 10, 99, 100, 999, 1000, 1001, 61_234, -base])("+%i ms", (d) => {
    const t = base + d;
    expect(isoTime(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
  });
  it("the same second twice, then the next, then back", () => {
    for (const t of [base + 5, base + 6, base + 1005, base + 7])
      expect(isoTime(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
  });
});

describe("BatchedDestination: audit lines written a batch at a time, in bounded memory", () => {
  const sink = () => {
    const writes: string[] = [];
    return { writes, out: { write: (d: string) => writes.push(d) > 0 } };
  };

  it("holds lines until a batch is full, then writes them in one write, in order", () => {
    const { writes, out } = sink();
    const d = new BatchedDestination(out, 10);
    d.write("aaaa\n");
    expect(writes).toEqual([]);
    d.write("bbbb\n");
    expect(writes).toEqual(["aaaa\nbbbb\n"]);
    d.write("c\n");
    expect(writes).toEqual(["aaaa\nbbbb\n"]);
  });

  it("flush writes what is held (the timer's flush), and nothing when nothing is", () => {
    const { writes, out } = sink();
    const d = new BatchedDestination(out, 1000);
    d.flush();
    d.write("x\n");
    d.flush();
    d.flush();
    expect(writes).toEqual(["x\n"]);
  });

  it("through pino into a file: each line JSON, on disk within the flush interval", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "logger-")), "audit.log");
    const log = createLogger({ level: "info", batch: { flushMs: 50, file } });
    for (let i = 0; i < 3; i++) log.info({ audit: { id: i } }, "gateway call");
    await expect
      .poll(() =>
        readFileSync(file, "utf8")
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      )
      .toMatchObject(
        [0, 1, 2].map((id) => ({ level: "info", audit: { id }, msg: "gateway call" })),
      );
  });

  it("a normal exit writes the lines still held (process.exit, before any flush)", () => {
    const file = join(mkdtempSync(join(tmpdir(), "logger-")), "audit.log");
    const logger = join(import.meta.dirname, "logger.ts");
    execFileSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { createLogger } from ${JSON.stringify(logger)};
         const log = createLogger({ batch: { flushMs: 60000, file: ${JSON.stringify(file)} } });
         log.info("one"); log.info("two"); process.exit(0);`,
      ],
      { env: { ...process.env, NODE_OPTIONS: "" } },
    );
    expect(
      readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).msg),
    ).toEqual(["one", "two"]);
    // A child process through tsx: seconds on a busy machine.
  }, 30_000);
});
