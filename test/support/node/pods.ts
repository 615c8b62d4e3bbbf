// Helpers for tests on the real node: kubectl as a person would type it, and
// bare Pods (no operator) for checking the node itself.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type * as k8s from "@kubernetes/client-node";
import { expect, inject } from "vitest";
import { SANDBOX_IMAGE } from "../docker.js";
import { eventually } from "../eventually.js";
import { type Ran, runCommand } from "../run-command.js";
import { localTagOf } from "./images.js";

const exec = promisify(execFile);

/** The sandbox-basic image as imported on the node (a tag the kubelet will not try to pull). */
export const NODE_SANDBOX_IMAGE = localTagOf(SANDBOX_IMAGE);

/**
 * What a test sandbox asks of the node. The default (1 CPU, requests = limits)
 * lets two sandboxes fill this 2-CPU node, and the sandboxes of the file before
 * are still terminating when the next file starts: theirs would be Unschedulable.
 */
export const NODE_TEST_RESOURCES = { cpu: "100m", memory: "128Mi" };

export type { Ran };

/** `kubectl ARGS...` against the test control plane; never throws on a non-zero exit. */
export function kubectl(args: string[], timeoutMs = 60_000): Promise<Ran> {
  return runCommand(
    join(inject("k8sBinDir"), "kubectl"),
    ["--kubeconfig", inject("kubeconfigPath"), ...args],
    timeoutMs,
  );
}

/** `ip netns exec`-free: a command in the node's network namespace. */
export function inNode(cmd: string, args: string[]): Promise<Ran> {
  return runCommand(
    "nsenter",
    [`--net=/run/netns/${inject("nodeNetns")}`, "--", cmd, ...args],
    30_000,
  );
}

/** A plain Pod running `command` in the sandbox-basic image. */
export function barePod(
  name: string,
  command: string[],
  extra: Partial<k8s.V1PodSpec> = {},
  labels: Record<string, string> = {},
): k8s.V1Pod {
  return {
    metadata: { name, labels: { app: name, ...labels } },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "main", image: NODE_SANDBOX_IMAGE, command }],
      ...extra,
    },
  };
}

export async function waitPod(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  check: (p: k8s.V1Pod) => void,
  timeout = 60_000,
): Promise<k8s.V1Pod> {
  return eventually(
    async () => {
      const pod = await core.readNamespacedPod({ name, namespace });
      check(pod);
      return pod;
    },
    { timeout, interval: 200 },
  );
}

export const isRunningReady = (p: k8s.V1Pod) => {
  expect(p.status?.phase, JSON.stringify(p.status?.containerStatuses)).toBe("Running");
  expect(p.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
};

/** Host PID of a Pod's container (by container name), from the node's containerd. */
export async function containerPid(pod: k8s.V1Pod, container: string): Promise<number> {
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  const id = statuses
    .find((s) => s.name === container)
    ?.containerID?.replace(/^containerd:\/\//, "");
  if (!id) throw new Error(`no container ${container} in ${pod.metadata?.name}`);
  const { stdout } = await exec("ctr", [
    "--address",
    inject("nodeContainerd").socket,
    "-n",
    "k8s.io",
    "tasks",
    "ls",
  ]);
  const line = stdout.split("\n").find((l) => l.startsWith(`${id} `));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  if (!pid) throw new Error(`container ${container} (${id}) has no task:\n${stdout}`);
  return pid;
}

/** A command in a container's network namespace, as the workload's UID with no capabilities. */
export async function asWorkloadIn(pid: number, argv: string[], uid = 1000): Promise<Ran> {
  const wrapped = [
    "-t",
    String(pid),
    "-n",
    "--",
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--",
    ...argv,
  ];
  return runCommand("nsenter", wrapped, 30_000);
}

/** The firewall in a container's network namespace, both iptables variants, as the kernel holds it. */
export async function podFirewall(pid: number): Promise<string> {
  const dump = async (cmd: string) => {
    try {
      return (await exec("nsenter", ["-t", String(pid), "-n", "--", cmd], { timeout: 10_000 }))
        .stdout;
    } catch {
      return "";
    }
  };
  // Counters change with traffic; the rules are what matters.
  const strip = (s: string) =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ""))
      .join("\n");
  return strip(
    [
      await dump("iptables-legacy-save"),
      await dump("ip6tables-legacy-save"),
      await dump("iptables-nft-save"),
      await dump("ip6tables-nft-save"),
    ].join("\n"),
  );
}
