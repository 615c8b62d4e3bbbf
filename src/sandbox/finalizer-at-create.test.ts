import Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { DockerBackend } from "../backends/docker/backend.js";
import { createLogger } from "../observability/logger.js";
import { SANDBOX_FINALIZER } from "./decide.js";
import { finalizersAtCreate } from "./finalizer-at-create.js";

describe("finalizersAtCreate", () => {
  it("gives the cleanup finalizer to the docker backend's sandboxes, as its backend asks", () => {
    // Nothing is dialled: the client connects on its first call.
    const backend = new DockerBackend({
      docker: new Docker({ socketPath: "/nonexistent.sock" }),
      settings: {
        owner: "t",
        egressImage: "e",
        upstreamDns: "127.0.0.1",
        publishAddress: "127.0.0.1",
      },
      enqueue: () => {},
      log: createLogger({ level: "silent" }),
    });
    expect(backend.needsFinalizer).toBe(true);
    expect(finalizersAtCreate("docker")).toEqual([SANDBOX_FINALIZER]);
  });

  it("gives none to the pod backend's: owner references clean up after them", () => {
    expect(finalizersAtCreate("pod")).toBeUndefined();
  });
});
