// Run a firewall tool with input on stdin, bounded in time, failing with its stderr.
import { spawn } from "node:child_process";

export class CommandError extends Error {
  override readonly name = "CommandError";
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export function runCommand(
  file: string,
  args: string[],
  input?: string,
  timeoutMs = 15_000,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (err) => reject(new CommandError(`${file}: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve({ stdout, stderr });
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(new CommandError(`${file} ${args.join(" ")} failed (${why}): ${stderr.trim()}`));
    });
    child.stdin.on("error", () => {}); // the close handler reports the failure
    child.stdin.end(input ?? "");
  });
}
