// Run the egress sidecar from JSON options (argv[2]) the way the CLI will:
// started as root inside the sandbox namespace, dropping to its own UID.
import { runEgressSidecar } from "../../../src/egress/index.js";
import type { EgressSidecarOptions } from "../../../src/egress/sidecar/options.js";

const opts = JSON.parse(process.argv[2]!) as EgressSidecarOptions;
const sidecar = await runEgressSidecar(opts);
process.stdout.write(
  `${JSON.stringify({ event: "ready", ports: sidecar.ports, uid: process.getuid?.() })}\n`,
);
process.on("SIGTERM", () => {
  void sidecar.close().then(() => process.exit(0));
});
