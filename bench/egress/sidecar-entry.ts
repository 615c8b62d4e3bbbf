// The sidecar as its own process for the benchmark (so its RSS can be read
// from /proc), started from JSON options. Its decision log goes to stdout as
// in production; {"event":"ready"} goes to fd 3, so the benchmark need not
// read (and pay for) the log.
import { writeSync } from "node:fs";
import { runEgressSidecar } from "../../src/egress/index.js";
import type { EgressSidecarOptions } from "../../src/egress/sidecar/options.js";

const sidecar = await runEgressSidecar(JSON.parse(process.argv[2]!) as EgressSidecarOptions);
writeSync(3, `${JSON.stringify({ event: "ready", ports: sidecar.ports })}\n`);
process.on("SIGTERM", () => void sidecar.close().then(() => process.exit(0)));
