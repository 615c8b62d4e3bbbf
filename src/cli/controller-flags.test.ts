import { describe, expect, it } from "vitest";
import {
  dockerPolicyDir,
  FlagError,
  listenAddress,
  parseControllerFlags,
  policyEndpoint,
} from "./controller-flags.js";

describe("controller flags", () => {
  it("has production defaults", () => {
    const f = parseControllerFlags([]);
    expect(f).toMatchObject({
      "default-backend": "pod",
      "leader-elect": true,
      concurrency: 16,
      "kube-api-qps": 200,
      "kube-api-burst": 400,
      namespaces: [],
    });
  });

  it("parses every flag", () => {
    const f = parseControllerFlags([
      "--kubeconfig=/tmp/kc",
      "--namespaces=a, b",
      "--default-backend=docker",
      "--leader-elect=false",
      "--concurrency=8",
      "--metrics-bind-address=127.0.0.1:9090",
      "--stall-timeout=60",
    ]);
    expect(f).toMatchObject({
      kubeconfig: "/tmp/kc",
      namespaces: ["a", "b"],
      "default-backend": "docker",
      "leader-elect": false,
      concurrency: 8,
      "stall-timeout": 60,
    });
  });

  it.each([
    [["--default-backend=vm"], /--default-backend/],
    [["--concurrency=0"], /--concurrency/],
    [["--concurrency=lots"], /--concurrency/],
    [["--leader-elect=yes"], /--leader-elect/],
    [["--metrics-bind-address=localhost"], /--metrics-bind-address: must be HOST:PORT/],
    [["--namespaces=Bad_NS"], /--namespaces/],
    [["--no-such-flag=1"], /no-such-flag/],
    [["positional"], /positional/],
  ])("rejects %j naming the flag", (argv, message) => {
    expect(() => parseControllerFlags(argv)).toThrow(FlagError);
    expect(() => parseControllerFlags(argv)).toThrow(message);
  });

  it("takes the gateway's namespace and the agent key together", () => {
    expect(
      parseControllerFlags(["--gateway-namespace=sandbox-system", "--agent-key-file=/k"]),
    ).toMatchObject({ "gateway-namespace": "sandbox-system", "agent-key-file": "/k" });
    expect(() => parseControllerFlags(["--gateway-namespace=gw"])).toThrow(
      "--gateway-namespace and --agent-key-file go together",
    );
    expect(() => parseControllerFlags(["--agent-key-file=/k"])).toThrow(FlagError);
    expect(() =>
      parseControllerFlags(["--gateway-namespace=Not_A_Namespace", "--agent-key-file=/k"]),
    ).toThrow("--gateway-namespace: must be a namespace name");
  });

  it("reads listen addresses", () => {
    expect(listenAddress(":8080")).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(listenAddress("[::1]:9")).toEqual({ host: "::1", port: 9 });
    expect(listenAddress("0")).toBeUndefined();
  });
});

describe("policy channel flags", () => {
  const tls = ["--policy-tls-cert=/c", "--policy-tls-key=/k", "--policy-ca=/ca"];
  it("are off by default and parse with their TLS files", () => {
    expect(parseControllerFlags([])["policy-endpoint"]).toBeUndefined();
    const f = parseControllerFlags(["--policy-endpoint=10.96.0.90:15090", ...tls]);
    expect(f["policy-endpoint"]).toBe("10.96.0.90:15090");
    expect(policyEndpoint("[fd00::1]:15090")).toEqual({ host: "fd00::1", port: 15090 });
    const s = parseControllerFlags(["--policy-service=ops/so-policy", ...tls]);
    expect(s["policy-service"]).toBe("ops/so-policy");
  });
  it.each([
    [["--policy-endpoint=10.96.0.90:15090"], "--policy-tls-cert: required"],
    [["--policy-endpoint=operator.svc:15090", ...tls], "--policy-endpoint: must be IP:PORT"],
    [["--policy-endpoint=10.96.0.90:15090", ...tls, "--policy-peer-namespace=op"], "go together"],
    [["--policy-peer-labels=a b"], "--policy-peer-labels: must be K=V"],
    [["--policy-service=ops/so-policy"], "--policy-tls-cert: required with --policy-service"],
    [["--policy-service=so-policy", ...tls], "--policy-service: must be NAMESPACE/NAME"],
    [["--policy-service=ops/so-policy", "--policy-endpoint=10.96.0.90:15090", ...tls], "give one"],
  ])("refuses %j naming the flag", (argv, message) => {
    expect(() => parseControllerFlags(argv)).toThrow(FlagError);
    expect(() => parseControllerFlags(argv)).toThrow(message);
  });

  it.each<[string | undefined, boolean, boolean, string | undefined]>([
    // [flag, local daemon, root, expected]
    [undefined, true, true, "/run/sandbox-operator/o/policies"],
    [undefined, false, true, undefined],
    [undefined, true, false, undefined],
    ["", true, true, undefined],
    ["/srv/p", false, false, "/srv/p"],
  ])("docker policy dir: flag %j, local %j, root %j -> %j", (flag, local, root, want) => {
    expect(dockerPolicyDir(flag, local, root, "o")).toBe(want);
  });

  it.each([["rel/dir"], ["/a b"]])("rejects --docker-policy-dir=%j", (v) => {
    expect(() => parseControllerFlags([`--docker-policy-dir=${v}`])).toThrow(/--docker-policy-dir/);
  });
});
