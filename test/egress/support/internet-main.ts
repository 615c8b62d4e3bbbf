// The stand-in internet, run inside the "internet" namespace: HTTP on 80 and
// 8080, HTTPS on 443 (all addresses, IPv4 and IPv6), and an authoritative DNS
// server. Prints one JSON line per DNS question and per TCP connection, so the
// tests see every packet that made it out of the sandbox.
import { readFileSync } from "node:fs";
import type { Server } from "node:net";
import { startAuthoritativeDns, type Zone } from "./authoritative-dns.js";
import { httpServer, httpsServer, listen } from "./web-servers.js";

interface Config {
  certPath: string;
  keyPath: string;
  dnsHost: string;
  zone: Zone;
}

const config = JSON.parse(process.argv[2]!) as Config;
const emit = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

function track(server: Server, name: string): void {
  server.on("connection", (socket) => {
    emit({
      event: "connection",
      server: name,
      local: socket.localAddress?.replace(/^::ffff:/, ""),
      port: socket.localPort,
    });
  });
}

const tls = { cert: readFileSync(config.certPath), key: readFileSync(config.keyPath) };
const servers: [Server, number, string][] = [
  [httpServer((s) => emit({ event: "request", ...s })), 80, "http"],
  [httpServer((s) => emit({ event: "request", ...s })), 8080, "http-8080"],
  [httpsServer(tls, (s) => emit({ event: "request", tls: true, ...s })), 443, "https"],
];
for (const [server, port, name] of servers) {
  track(server, name);
  await listen(server as never, port, "::");
}
await startAuthoritativeDns({
  host: config.dnsHost,
  port: 53,
  zone: config.zone,
  onQuery: (q) => emit({ event: "dns", ...q }),
});
emit({ event: "ready" });
