// The kind dev loop (`make kind-up deploy demo kind-down`) with nothing pulled
// from a registry: kind built from the Go module proxy (hack/kind/build.sh), a
// kind node image built here from the local Debian base, Debian's containerd,
// runc and CNI plugins, and kubelet/kubeadm built from the same modules as the
// harness's node (hack/kind/node-image.sh). The end-to-end run needs a host
// whose kernel and Docker let kind's node container boot systemd and run a
// kubelet; where that cannot work it is skipped with the reason printed (a
// skip, never a pass), and the parts that can be checked still run.
import { execFile, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/paths.js";

const exec = promisify(execFile);
const DOCKER_LOCK = "/tmp/sbx-docker.lock";

const kindBins = () =>
  execFileSync("bash", [join(REPO_ROOT, "hack/kind/build.sh")], { encoding: "utf8" }).trim();
const pinnedKind = () =>
  readFileSync(join(REPO_ROOT, "hack/kind/go.mod"), "utf8").match(
    /sigs\.k8s\.io\/kind (v[\d.]+)/,
  )![1]!;
const nodeKubelet = () =>
  execFileSync(
    join(
      execFileSync("bash", [join(REPO_ROOT, "hack/k8s-bins/node/build.sh")], {
        encoding: "utf8",
      }).trim(),
      "kubelet",
    ),
    ["--version"],
    { encoding: "utf8" },
  ).trim();

/**
 * Why this host cannot run kind's nodes, or undefined when it can. kind starts
 * every node as a `--privileged` container (not configurable) running systemd;
 * a host whose Docker cannot start a privileged container stops it before
 * anything of ours runs. Probed with the local Debian base (`make images`).
 */
function kindHostLimit(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  try {
    execFileSync(
      "flock",
      [
        "-w",
        "900",
        DOCKER_LOCK,
        "docker",
        "run",
        "--rm",
        "--privileged",
        "sandbox-operator/debian-base:bookworm",
        "true",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 960_000 },
    );
    return undefined;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail =
      (e.stderr || e.message)
        .trim()
        .split("\n")
        .find((l) => l.includes("Error")) ?? e.message;
    const caps = readFileSync("/proc/self/status", "utf8").match(/^CapBnd:\s+(\S+)/m)?.[1];
    return `Docker cannot start a --privileged container here, and kind's nodes are privileged containers: ${detail} (capability bounding set ${caps})`;
  }
}
const limit = kindHostLimit();
if (limit) process.stderr.write(`[kind] end-to-end loop skipped: ${limit}\n`);

/** A command under the shared Docker lock (the engine is shared), waiting for it up to `timeout`. */
async function underDockerLock(argv: string[], timeout = 900_000) {
  return exec("flock", ["-w", String(timeout / 1000), DOCKER_LOCK, ...argv], {
    cwd: REPO_ROOT,
    timeout: timeout * 2,
    maxBuffer: 64 * 2 ** 20,
  });
}

describe("the kind loop, from parts built here", () => {
  let image = "";

  it("builds kind from the Go module proxy at the pinned version", () => {
    const out = execFileSync(join(kindBins(), "kind"), ["version"], { encoding: "utf8" });
    expect(out).toContain(`kind ${pinnedKind()} `);
  }, 900_000);

  it("builds a kind node image locally with the harness node's kubelet, kubeadm, containerd and runc", async () => {
    const { stdout } = await underDockerLock(["bash", "hack/kind/node-image.sh"]);
    image = stdout.trim().split("\n").pop()!;
    expect(image).toMatch(/^sandbox-operator\/kind-node:v1\.34\./);
    // One container (one turn of the shared Docker lock) reports everything.
    const { stdout: report } = await underDockerLock(
      [
        ...["docker", "run", "--rm", "--entrypoint", "sh", image, "-c"],
        [
          "kubelet --version",
          "kubeadm version -o short",
          "containerd --version",
          "runc --version | head -n 1",
          "cat /kind/version",
          "tar -xOf /kind/images/images.tar manifest.json; echo",
        ].join("; "),
      ],
      900_000,
    );
    const [kubeletV, kubeadmV, containerdV, runcV, kindVersion, manifest] = report
      .trim()
      .split("\n");
    const kubelet = nodeKubelet();
    const version = kubelet.split(" ")[1];
    expect(kubeletV).toBe(kubelet);
    expect(kubeadmV).toBe(version);
    expect(containerdV).toMatch(/containerd .* 1\.6\./);
    expect(runcV).toMatch(/^runc version 1\./);
    expect(kindVersion).toBe(version);
    // The control-plane images kubeadm asks for are in the image, imported at boot.
    for (const name of [
      "kube-apiserver",
      "kube-controller-manager",
      "kube-scheduler",
      "kube-proxy",
      "etcd",
      "pause",
    ])
      expect(manifest).toContain(`registry.k8s.io/${name}:`);
  }, 1_800_000);

  it.skipIf(limit !== undefined)(
    "make kind-up deploy demo kind-down runs hello on a kind cluster and leaves no cluster behind",
    async () => {
      const cluster = `sbx-kind-${process.pid}`;
      const make = (targets: string[]) =>
        underDockerLock(["make", ...targets, `KIND_CLUSTER=${cluster}`], 1_500_000);
      let out = "";
      try {
        const r = await make(["kind-up", "deploy", "demo"]);
        out = r.stdout + r.stderr;
      } finally {
        await make(["kind-down"]);
      }
      expect(out).toMatch(/hello\s+Succeeded/);
      expect(out).toContain("hello from a sandbox");
      const left = await underDockerLock(
        ["docker", "ps", "-a", "-q", "--filter", `label=io.x-k8s.kind.cluster=${cluster}`],
        120_000,
      );
      expect(left.stdout.trim()).toBe("");
    },
    1_800_000,
  );
});
