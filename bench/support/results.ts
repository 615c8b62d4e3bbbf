// A benchmark's result file. Inside the repository it is written as the
// formatter writes it, so a fresh result committed as it is passes `npm run
// lint` (biome checks the JSON under bench/results like the sources); biome
// refuses paths outside the project, so an --out elsewhere is left as written.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { REPO_ROOT } from "../../test/support/paths.js";

export function writeResult(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  const inRepo = relative(REPO_ROOT, resolve(path));
  if (inRepo.startsWith("..") || isAbsolute(inRepo)) return;
  execFileSync("npx", ["biome", "format", "--write", inRepo], { cwd: REPO_ROOT, stdio: "ignore" });
}
