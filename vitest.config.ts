import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default", "./test/support/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Against the real dockerd, one file at a time: one of them restarts the daemon.
        test: {
          name: "docker",
          include: ["test/docker/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 600_000,
        },
      },
      {
        // Against a real node (kubelet, containerd, CNI, kube-proxy, kube-router):
        // the pod backend's Pods really run. Root; see test/support/node/.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          globalSetup: ["test/support/node-global-setup.ts"],
          // One file at a time: 2 cores, and a file may start a node of its own.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        // The kind dev loop from parts built here (Docker; root). The end-to-end
        // run is skipped, with the reason printed, where the host cannot run it.
        test: {
          name: "kind",
          include: ["test/kind/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 900_000,
          hookTimeout: 900_000,
        },
      },
      {
        test: {
          name: "egress",
          include: ["test/egress/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
