// Bundles the SDK and the kubectl plugin from the repository's sources (the
// SDK shares src/dataplane and src/api with the operator, one copy of the
// protocol and the API). Dependencies stay external: package.json lists them.
import { chmod, rm } from "node:fs/promises";
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
await build({
  ...common,
  entryPoints: { "kubectl-sandbox": "src/cli/main.ts" },
  outdir: "dist",
  banner: { js: "#!/usr/bin/env node" },
});
await chmod("dist/kubectl-sandbox.js", 0o755);
