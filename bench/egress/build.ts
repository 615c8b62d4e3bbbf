// Compile the benchmark's sidecar entry (and what it imports) to JavaScript,
// so the measured process is plain node as in the image, not node + tsx.
import { execFileSync } from "node:child_process";
import { join } from "node:path";

export function buildSidecar(repoRoot: string): string {
  const outDir = join(repoRoot, "node_modules/.cache/sandbox-operator-bench");
  execFileSync(
    join(repoRoot, "node_modules/.bin/tsc"),
    [
      "--outDir",
      outDir,
      "--rootDir",
      repoRoot,
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2023",
      "--strict",
      "--skipLibCheck",
      "--esModuleInterop",
      "--types",
      "node",
      "--resolveJsonModule",
      join(repoRoot, "bench/egress/sidecar-entry.ts"),
    ],
    { stdio: "inherit" },
  );
  return join(outDir, "bench/egress/sidecar-entry.js");
}
