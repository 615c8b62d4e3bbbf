// One way to run a program in tests: output captured, bounded in time, and a
// non-zero exit returned rather than thrown (a refusal is often the outcome a
// test expects). docker(), kubectl() and the node helpers are this with a file.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);

export interface Ran {
  /** The exit code; -1 when the program could not start or was killed at the timeout. */
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCommand(file: string, args: string[], timeoutMs = 60_000): Promise<Ran> {
  try {
    const { stdout, stderr } = await exec(file, args, {
      timeout: timeoutMs,
      maxBuffer: 16 * 2 ** 20,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === "number" ? e.code : -1,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}
