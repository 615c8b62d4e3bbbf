// The benchmark's HTTPS origin in a process of its own, so that the client's
// TLS work and the server's do not share one event loop (which made "direct"
// slower than any route with a proxy process in between to buffer for it).
// argv[2]: {"certPath","keyPath"}; prints {"port": N} once listening.
import { readFileSync } from "node:fs";
import { httpsServer, listen } from "../../test/egress/support/web-servers.js";

const { certPath, keyPath } = JSON.parse(process.argv[2]!) as { certPath: string; keyPath: string };
const server = httpsServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) });
const port = await listen(server, 0, "127.0.0.1");
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on("SIGTERM", () => process.exit(0));
