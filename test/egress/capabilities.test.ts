// The capabilities the lockdown really needs, measured with the real CLI in a
// fresh namespace: the pod backend grants exactly these to the init container.
// iptables-nft needs NET_ADMIN only; iptables-legacy also opens a raw socket
// and needs NET_RAW.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EGRESS_CLI } from "./support/egress-binary.js";
import { collectStaleNamespaces, Netns, uniqueName } from "./support/netns.js";
import { requireRootAndTools } from "./support/processes.js";

const CLI = EGRESS_CLI;
let dir: string;

beforeAll(async () => {
  requireRootAndTools(["ip", "setpriv", "iptables-nft-restore", "iptables-legacy-restore"]);
  await collectStaleNamespaces();
  dir = mkdtempSync(join(tmpdir(), "egress-caps-"));
  writeFileSync(
    join(dir, "policy.yaml"),
    "defaultAction: deny\nrules:\n  - {action: allow, target: 10.20.0.0/16}\n",
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function lockdownWith(variant: "nft" | "legacy", caps: string[]) {
  const ns = await Netns.create(uniqueName(`caps-${variant}`));
  try {
    const bounding = ["-all", ...caps.map((c) => `+${c}`)].join(",");
    return await ns.exec(
      [
        "setpriv",
        `--bounding-set=${bounding}`,
        "--inh-caps=-all",
        "--",
        ...CLI,
        "egress-init",
        `--policy-file=${join(dir, "policy.yaml")}`,
        `--iptables=${variant}`,
      ],
      { timeoutMs: 30_000 },
    );
  } finally {
    await ns.destroy();
  }
}

describe("egress-init capabilities", () => {
  it("installs the nft lockdown with NET_ADMIN alone", async () => {
    const r = await lockdownWith("nft", ["net_admin"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain("egress lockdown installed and verified");
  });

  it("installs the legacy lockdown with NET_ADMIN and NET_RAW", async () => {
    const r = await lockdownWith("legacy", ["net_admin", "net_raw"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });

  it("fails loudly, exit 1, without NET_ADMIN", async () => {
    const r = await lockdownWith("nft", ["net_raw"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("egress lockdown failed");
  });
});
