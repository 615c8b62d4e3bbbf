// Bundles the SDK and the kubectl plugin from the repository's sources (the
// SDK shares src/dataplane and src/api with the operator, one copy of the
// protocol and the API). Dependencies stay external: package.json lists them.
import { execFileSync } from "node:child_process";
import { chmod, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { build } from "esbuild";

await rm("dist", { recursive: true, force: true });
const common = {
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  keepNames: true,
};
await build({ ...common, entryPoints: { index: "src/index.ts" }, outdir: "dist" });
// The plugin's commands load on first use (see src/cli/main.ts), so `--help`
// and usage errors answer without importing @kubernetes/client-node, which is
// most of a command's start-up time. (Bundling the dependencies into the
// plugin was tried: ssh2, under dockerode, needs CommonJS's __dirname.)
await build({
  ...common,
  splitting: true,
  chunkNames: "cli/[name]-[hash]",
  entryPoints: { "kubectl-sandbox": "src/cli/main.ts" },
  outdir: "dist",
  banner: { js: "#!/usr/bin/env node" },
});
await chmod("dist/kubectl-sandbox.js", 0o755);

// Types: declarations of the SDK's entry and what it exports (src/api, src/dataplane),
// from the same TypeScript sources; package.json's "types" points at the entry's.
// (--no-types: the bundles only, for tests that run the plugin; tsc takes ~20 s.)
if (!process.argv.includes("--no-types")) {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.types.json"], { stdio: "inherit" });
  await writeFile("dist/index.d.ts", 'export * from "./types/packages/sdk/src/index.js";\n');
}
