// What the static firewall costs: a TCP connection to a port other than
// 80/443 now goes through the sidecar (redirected by the lockdown, judged by
// its original destination, spliced to the upstream as the sidecar's UID)
// instead of straight out under a firewall address rule. Measured in real
// network namespaces (test/egress/support/netns.ts: a sandbox and a stand-in
// internet joined by a veth pair), with the Go sidecar both backends run:
//
// - bulk throughput of one connection, redirected (the workload's UID) against
//   direct (the same transfer from the sidecar's UID, which the firewall lets
//   out without a redirect: same veth, same hooks), alternating runs;
// - added latency of a new connection (connect + first byte), p50/p99;
// - the sidecar's RSS idle, and with 100 redirected connections held open.
//
// Prints the figures and writes bench/results/egress-redirected.json. Needs
// root (network namespaces), python3, iptables-nft; `make egress` first.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EGRESS_CLI } from "../../test/egress/support/egress-binary.js";
import { collectStaleNamespaces, createTopology, NET } from "../../test/egress/support/netns.js";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const WORKLOAD_UID = 1000;
const SIDECAR_UID = 1337;
const BULK_BYTES = 512 * 1024 * 1024;
const RUNS = 5;
const LATENCY_CONNECTIONS = 300;
const HELD = 100;
const BULK_PORT = 9000;
const HOLD_PORT = 9001;
const ECHO_PORT = 9002;

const round = (n: number, digits = 2) => Number(n.toFixed(digits));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// One server per port: bulk sends N bytes and closes; hold keeps the
// connection open until the client leaves; echo answers one byte per byte.
const SERVER = `
import socket, sys, threading, json
host, total = sys.argv[1], int(sys.argv[2])
buf = b"x" * (1 << 20)
def bulk(c):
    n = total
    while n > 0:
        c.sendall(buf[:min(n, len(buf))]); n -= len(buf)
    c.close()
def hold(c):
    c.recv(1); c.close()
def echo(c):
    while True:
        d = c.recv(1)
        if not d: break
        c.sendall(d)
    c.close()
def serve(port, fn):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port)); ls.listen(1024)
    while True:
        c, _ = ls.accept(); threading.Thread(target=fn, args=(c,), daemon=True).start()
for port, fn in ((${BULK_PORT}, bulk), (${HOLD_PORT}, hold), (${ECHO_PORT}, echo)):
    threading.Thread(target=serve, args=(port, fn), daemon=True).start()
print(json.dumps({"event": "ready"}), flush=True)
threading.Event().wait()
`;

const BULK_CLIENT = `
import socket, sys, time, json
t = time.perf_counter()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = bytearray(1 << 20); n = 0
while True:
    k = s.recv_into(buf)
    if not k: break
    n += k
print(json.dumps({"bytes": n, "seconds": time.perf_counter() - t}))
`;

const LATENCY_CLIENT = `
import socket, sys, time, json
ms = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"x"); s.recv(1)
    ms.append((time.perf_counter() - t) * 1000)
    s.close()
ms.sort()
print(json.dumps({"p50": ms[len(ms) // 2], "p99": ms[int(len(ms) * 0.99)]}))
`;

const HOLD_CLIENT = `
import socket, sys, json, time
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]
print(json.dumps({"event": "open", "n": len(conns)}), flush=True)
time.sleep(30)
`;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return round(Number(m![1]) / 1024, 1);
}

async function main(): Promise<void> {
  await collectStaleNamespaces();
  const dir = mkdtempSync(join(tmpdir(), "bench-redirected-"));
  chmodSync(dir, 0o755);
  const policyFile = join(dir, "policy.json");
  writeFileSync(
    policyFile,
    JSON.stringify({
      defaultAction: "deny",
      rules: [
        { action: "allow", target: `${NET.allowed}/32`, ports: [BULK_PORT, HOLD_PORT, ECHO_PORT] },
      ],
    }),
    { mode: 0o644 },
  );
  const topo = await createTopology();
  try {
    const server = topo.internet.spawn([
      "/usr/bin/python3",
      "-c",
      SERVER,
      NET.allowed,
      String(BULK_BYTES),
    ]);
    await server.waitFor((l) => l.event === "ready");
    topo.sandbox.etcFile("resolv.conf", `nameserver ${NET.dns}\n`);
    const init = await topo.sandbox.exec(
      [...EGRESS_CLI, "egress-init", `--policy-file=${policyFile}`, "--iptables=nft"],
      { timeoutMs: 30_000 },
    );
    if (init.code !== 0) throw new Error(`egress-init: ${init.stdout}${init.stderr}`);
    const sidecar = topo.sandbox.spawn([
      ...EGRESS_CLI,
      "egress",
      `--policy-file=${policyFile}`,
      "--sandbox=bench/redirected",
      `--upstream-dns=${NET.dns}:53`,
      `--sidecar-uid=${SIDECAR_UID}`,
    ]);
    await sidecar.waitFor((l) => l.msg === "egress sidecar ready");
    const pid = sidecar.child.pid!;
    await new Promise((r) => setTimeout(r, 500));
    const idleRss = rssMiB(pid);

    const py = async (code: string, args: string[], uid: number) => {
      const r = await topo.sandbox.exec(["/usr/bin/python3", "-c", code, ...args], {
        as: { uid },
        timeoutMs: 120_000,
      });
      if (r.code !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout.trim()) as Record<string, number>;
    };
    const mibps = (r: Record<string, number>) => {
      if (r.bytes !== BULK_BYTES) throw new Error(`got ${r.bytes} bytes, want ${BULK_BYTES}`);
      return round(r.bytes! / 1024 / 1024 / r.seconds!, 0);
    };
    const direct: number[] = [];
    const redirected: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      direct.push(mibps(await py(BULK_CLIENT, [NET.allowed, String(BULK_PORT)], SIDECAR_UID)));
      redirected.push(mibps(await py(BULK_CLIENT, [NET.allowed, String(BULK_PORT)], WORKLOAD_UID)));
    }
    // The workload's transfers did go through the sidecar.
    const judged = sidecar.lines.filter((l) => l.protocol === "tcp" && l.port === BULK_PORT);
    if (judged.length !== RUNS)
      throw new Error(`the sidecar judged ${judged.length} bulk connections, want ${RUNS}`);
    const afterBulkRss = rssMiB(pid);

    const latencyArgs = [NET.allowed, String(ECHO_PORT), String(LATENCY_CONNECTIONS)];
    const latDirect = await py(LATENCY_CLIENT, latencyArgs, SIDECAR_UID);
    const latRedirected = await py(LATENCY_CLIENT, latencyArgs, WORKLOAD_UID);

    const holder = topo.sandbox.spawn(
      ["/usr/bin/python3", "-c", HOLD_CLIENT, NET.allowed, String(HOLD_PORT), String(HELD)],
      { uid: WORKLOAD_UID },
    );
    await holder.waitFor((l) => l.event === "open", 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const heldRss = rssMiB(pid);
    await holder.kill("SIGKILL");

    const ratio = round(median(redirected) / median(direct), 3);
    const results = {
      when: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        kernel: release(),
        loadavg: loadavg().map((n) => round(n)),
      },
      setup: {
        path: "sandbox netns -> veth -> internet netns; workload UID redirected by the lockdown to the Go sidecar's transparent listener (SO_ORIGINAL_DST, address rule), direct = the sidecar's UID, not redirected",
        bulkBytes: BULK_BYTES,
        runs: RUNS,
        latencyConnections: LATENCY_CONNECTIONS,
        heldConnections: HELD,
        clients: "python3 (recv_into 1 MiB), the same for both",
      },
      throughputMiBps: {
        direct,
        redirected,
        directMedian: median(direct),
        redirectedMedian: median(redirected),
        ratio,
      },
      newConnectionMs: {
        direct: { p50: round(latDirect.p50!, 3), p99: round(latDirect.p99!, 3) },
        redirected: { p50: round(latRedirected.p50!, 3), p99: round(latRedirected.p99!, 3) },
        addedP50: round(latRedirected.p50! - latDirect.p50!, 3),
      },
      sidecarRssMiB: { idle: idleRss, afterBulk: afterBulkRss, [`with${HELD}Held`]: heldRss },
      goals: { throughputRatio: 0.9, idleRssMiB: 10 },
    };
    mkdirSync(join(REPO, "bench/results"), { recursive: true });
    const out = join(REPO, "bench/results/egress-redirected.json");
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    execFileSync(join(REPO, "node_modules/.bin/biome"), ["format", "--write", out]);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
