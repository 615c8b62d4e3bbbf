import type { ContainerInspectInfo } from "dockerode";
import { describe, expect, it } from "vitest";
import { intact } from "./intact.js";
import { DockerLabels } from "./names.js";

type C = Pick<ContainerInspectInfo, "Config" | "State">;
const c = (hash: string | undefined, state: Partial<C["State"]> = {}): C =>
  ({
    Config: { Labels: hash === undefined ? {} : { [DockerLabels.specHash]: hash } },
    State: { Running: true, Restarting: false, Dead: false, ...state },
  }) as C;
const want = { sidecar: "s1", workload: "w1" };

describe("intact", () => {
  it.each<[string, C | undefined, C | undefined, boolean]>([
    ["both there, hashes as desired, sidecar running", c("s1"), c("w1"), true],
    [
      "a workload that finished is still intact (its exit is the result)",
      c("s1"),
      c("w1", { Running: false }),
      true,
    ],
    ["no sidecar", undefined, c("w1"), false],
    ["no workload", c("s1"), undefined, false],
    ["the sidecar's spec changed", c("s0"), c("w1"), false],
    ["the workload's spec changed", c("s1"), c("w0"), false],
    ["a sidecar without a hash label", c(undefined), c("w1"), false],
    ["a stopped sidecar", c("s1", { Running: false }), c("w1"), false],
    ["a restarting sidecar", c("s1", { Restarting: true }), c("w1"), false],
    ["a dead sidecar", c("s1", { Dead: true }), c("w1"), false],
    ["a dead workload", c("s1"), c("w1", { Dead: true }), false],
  ])("%s", (_, sidecar, workload, expected) => {
    expect(intact(sidecar, workload, want)).toBe(expected);
  });

  it("is false when no sidecar hash is desired", () => {
    expect(intact(c("s1"), c("w1"), { workload: "w1" })).toBe(false);
  });
});
