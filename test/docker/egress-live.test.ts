// Address rules and defaultAction reach a running docker sandbox live: the
// lockdown the sidecar installed at start holds no policy, the controller
// writes the changed policy file for the sidecar, both ways it can (into the
// host directory the sidecar mounts, with a local daemon; as an archive
// uploaded into the container, as with a remote one), and the sidecar
// judges every connection the workload opens by its original destination. The
// containers are never recreated (their IDs and start times do not change),
// and a connection to a port the policy does not open never leaves.
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConditionType } from "../../src/api/conditions.js";
import type { EgressPolicy } from "../../src/api/sandbox-spec.js";
import { POLICY_ACK_FILE, POLICY_DIR } from "../../src/egress/contract.js";
import { kubeConfig, testNamespace } from "../support/cluster.js";
import {
  containerNames,
  docker,
  ensureDockerd,
  removeOwnedBy,
  SANDBOX_IMAGE,
} from "../support/docker.js";
import { type DockerInternet, INET, startDockerInternet } from "../support/docker-internet.js";
import { type RunningOperator, startDockerOperator } from "../support/operator.js";
import { condition, isReady, SandboxClient, type StoredSandbox } from "../support/sandboxes.js";

const kc = kubeConfig();
const OWNER = `test-live-${process.pid}`;
const BASE: EgressPolicy = {
  defaultAction: "deny",
  rules: [{ action: "allow", target: "allowed.test", ports: [80, 443] }],
};

let ns: Awaited<ReturnType<typeof testNamespace>>;
let sbx: SandboxClient;
let engine: Docker;
let internet: DockerInternet;
let operator: RunningOperator | undefined;
let sandbox: StoredSandbox;
let NAME: string;

const ids = async () => {
  const { workload, sidecar } = containerNames(sandbox);
  const [w, e] = await Promise.all([
    engine.getContainer(workload).inspect(),
    engine.getContainer(sidecar).inspect(),
  ]);
  return { workload: w.Id, sidecar: e.Id, started: [w.State.StartedAt, e.State.StartedAt] };
};

beforeAll(async () => {
  engine = await ensureDockerd();
  internet = await startDockerInternet({
    "allowed.test": { A: [INET.allowed] },
    "denied.test": { A: [INET.denied] },
  });
  ns = await testNamespace(kc, "live");
  sbx = new SandboxClient(kc, ns.name);
}, 600_000);

afterAll(async () => {
  await removeOwnedBy(OWNER);
  await ns?.delete();
  await internet?.destroy();
});

/**
 * A plain TCP connection from the workload (UID 1000, no capabilities), no
 * proxy: "status 200" when the server answered, "refused ..." or "status
 * empty" when the sidecar turned the connection away.
 */
async function dial(host: string, port: number): Promise<string> {
  const code = [
    "import socket",
    "try:",
    `  s=socket.create_connection(('${host}',${port}),timeout=5)`,
    `  s.sendall(b'GET /live HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n')`,
    "  d=s.recv(4096)",
    "  print('status', d.split(b' ')[1].decode() if d else 'empty')",
    "except Exception as e:",
    "  print('refused', type(e).__name__)",
  ].join("\n");
  const r = await docker(["exec", containerNames(sandbox).workload, "python3", "-c", code], 60_000);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

const connectionsTo = (address: string, port: number) =>
  internet.servers.lines.filter(
    (l) => l.event === "connection" && l.local === address && l.port === port,
  ).length;

/** Change the policy and wait until the controller reports it in force for the new generation. */
async function applyPolicy(egress: EgressPolicy): Promise<void> {
  const patched = await sbx.patchSpec(NAME, { network: { egress } });
  await sbx.waitFor(
    NAME,
    (s) => {
      expect(s.status?.observedGeneration).toBe(patched.metadata.generation);
      expect(condition(s, ConditionType.EgressReady)?.status).toBe("True");
      isReady(s);
    },
    30_000,
  );
}

describe.each([
  { delivery: "a host directory the sidecar mounts", name: "live-dir", policyDir: undefined },
  {
    delivery: "an archive uploaded through the daemon",
    name: "live-upload",
    policyDir: false as const,
  },
])(
  "docker backend: address rules and defaultAction follow the policy live, through $delivery",
  ({ name, policyDir }) => {
    beforeAll(async () => {
      NAME = name;
      operator = await startDockerOperator({
        namespace: ns.name,
        user: "operator-2",
        engine,
        owner: OWNER,
        upstreamDns: INET.dns,
        policyDir,
      });
      await sbx.create(NAME, {
        image: SANDBOX_IMAGE,
        command: ["sleep", "3600"],
        network: { egress: BASE },
      });
      sandbox = await sbx.waitFor(
        NAME,
        (s) => {
          isReady(s);
          expect(s.status?.phase).toBe("Running");
        },
        90_000,
      );
    }, 600_000);

    afterAll(async () => {
      await operator?.stop();
      operator = undefined;
      await sbx.delete(NAME).catch(() => undefined);
    });

    it("delivers the policy the way it was configured to", async () => {
      const sidecar = await engine.getContainer(containerNames(sandbox).sidecar).inspect();
      const bound = (sidecar.Mounts ?? []).filter(
        (m) => m.Type === "bind" && m.Source.includes("/policies/"),
      );
      // The policy directory, read-only, and the acknowledgement file, writable.
      expect(bound.map((m) => [m.Destination, m.RW]).sort()).toEqual(
        policyDir === false
          ? []
          : [
              [POLICY_ACK_FILE, true],
              [POLICY_DIR, false],
            ].sort(),
      );
      // Through the daemon nothing comes back, and the status says so; from the
      // host directory the sidecar acknowledges what it applied.
      expect(condition(sandbox, ConditionType.EgressReady)?.message).toMatch(
        policyDir === false
          ? /uploaded through the Docker daemon.*not acknowledged as applied/
          : /acknowledged the policy of generation 1$/,
      );
    });

    it("an address rule added to a running sandbox is in force once reported, refused before; removed, refused again", async () => {
      const before = await ids();
      const arrivedBefore = connectionsTo(INET.allowed, 8080);
      expect(await dial(INET.allowed, 8080)).not.toContain("status 200");
      expect(connectionsTo(INET.allowed, 8080)).toBe(arrivedBefore);

      await applyPolicy({
        ...BASE,
        rules: [...BASE.rules!, { action: "allow", target: `${INET.allowed}/32`, ports: [8080] }],
      });
      // The first connection after the status says so is judged by the new policy.
      expect(await dial(INET.allowed, 8080)).toBe("status 200");
      expect(connectionsTo(INET.allowed, 8080)).toBe(arrivedBefore + 1);
      // Only that address and port.
      expect(await dial(INET.denied, 8080)).not.toContain("status 200");
      expect(await dial(INET.allowed, 5432)).not.toContain("status 200");

      await applyPolicy(BASE);
      expect(await dial(INET.allowed, 8080)).not.toContain("status 200");
      expect(connectionsTo(INET.allowed, 8080)).toBe(arrivedBefore + 1);
      // Same containers, never restarted.
      expect(await ids()).toEqual(before);
    });

    it("defaultAction allow flipped live, and back", async () => {
      const before = await ids();
      expect(await dial(INET.denied, 8080)).not.toContain("status 200");
      await applyPolicy({ ...BASE, defaultAction: "allow" });
      expect(await dial(INET.denied, 8080)).toBe("status 200");
      await applyPolicy(BASE);
      const arrived = connectionsTo(INET.denied, 8080);
      expect(await dial(INET.denied, 8080)).not.toContain("status 200");
      expect(connectionsTo(INET.denied, 8080)).toBe(arrived);
      expect(await ids()).toEqual(before);
    });

    it("a direct connection to another port never leaves; the workload cannot open a raw socket", async () => {
      const arrived = connectionsTo(INET.denied, 8080) + connectionsTo(INET.allowed, 8080);
      for (const host of [INET.denied, INET.allowed]) {
        expect(await dial(host, 8080)).not.toContain("status 200");
      }
      expect(connectionsTo(INET.denied, 8080) + connectionsTo(INET.allowed, 8080)).toBe(arrived);
      // Raw sockets (which the namespace suite shows get nowhere either) are not
      // even available: the workload holds no CAP_NET_RAW.
      const raw = await docker(
        [
          "exec",
          containerNames(sandbox).workload,
          "python3",
          "-c",
          "import socket\ntry:\n  socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP);print('opened')\nexcept PermissionError:\n  print('denied')",
        ],
        60_000,
      );
      expect(raw.stdout.trim()).toBe("denied");
    });
  },
);
