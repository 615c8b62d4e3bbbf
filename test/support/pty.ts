import { spawn } from "node:child_process";

export type PtyResult = { status: number | null; stdout: string };

/**
 * Runs `argv` on a real pseudo-terminal (python3's pty module), as a person's
 * terminal would, and answers its first `read` with "hello" once the command has
 * printed its tty name and one more line. For `exec -it` tests: the command under
 * test is expected to print `tty`, then read a line.
 */
export function runUnderPty(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<PtyResult> {
  const seconds = Math.ceil(opts.timeoutMs / 1000) - 30;
  const script = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(${JSON.stringify(argv[0])}, ${JSON.stringify(argv)})
out = b""
sent = False
deadline = time.time() + ${seconds}
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and b"/dev/pts/" in out and b"\\n" in out.split(b"/dev/pts/")[1] and len(out.split(b"\\n")) > 2:
        os.write(fd, b"hello\\r")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`;
  return new Promise((resolve) => {
    const child = spawn("python3", ["-c", script], { env: opts.env, cwd: opts.cwd });
    let stdout = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout });
    });
  });
}
