import { describe, expect, it } from "vitest";
import { DockerReach, PodReach, type SandboxObject } from "./directory.js";
import { GatewayError } from "./errors.js";

const box = (status: Record<string, unknown>) =>
  ({
    metadata: { name: "b", namespace: "ns", uid: "u1" },
    spec: {},
    status: { backend: "pod", ...status },
  }) as unknown as SandboxObject;

describe("PodReach.logs", () => {
  it.each([
    ["no kubeconfig", undefined, box({ podName: "b" }), /reads no pod logs/],
    ["no Pod yet", {}, box({}), /no Pod yet/],
  ])("%s: 503 SANDBOX_NOT_READY before any request", async (_, kc, s, message) => {
    const reach = new PodReach(undefined, kc as never);
    const err = await reach.logs(s, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ status: 503, code: "SANDBOX_NOT_READY", message });
  });
});

describe("DockerReach.port", () => {
  const docker = (status: Record<string, unknown>) =>
    ({
      metadata: { name: "b", namespace: "ns", uid: "u1" },
      spec: { ports: [{ name: "web", port: 8000 }] },
      status: {
        backend: "docker",
        ip: "172.18.0.2",
        endpoints: [{ name: "web", host: "127.0.0.1", port: 49153 }],
        ...status,
      },
    }) as unknown as SandboxObject;
  // The Docker API is never called for ports: both routes read the status.
  const engine = {} as never;

  it.each([
    ["bridge", docker({}), { host: "172.18.0.2", port: 8000 }],
    ["published", docker({}), { host: "127.0.0.1", port: 49153 }],
    [
      "bridge without an address yet",
      docker({ ip: undefined }),
      { host: "127.0.0.1", port: 49153 },
    ],
  ] as const)("%s", (route, s, want) => {
    expect(new DockerReach(engine, route.split(" ")[0] as "bridge").port(s, 8000)).toEqual(want);
  });

  it.each(["bridge", "published"] as const)(
    "%s: an undeclared port, or one not published yet, is refused",
    (route) => {
      const reach = new DockerReach(engine, route);
      for (const [s, port] of [
        [docker({}), 9000],
        [docker({ endpoints: [] }), 8000],
      ] as const)
        expect(() => reach.port(s, port)).toThrow(/has no endpoint yet/);
    },
  );
});
