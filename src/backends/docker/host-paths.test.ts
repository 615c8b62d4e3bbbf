import { describe, expect, it } from "vitest";
import { isUnder, judgeHostPath, parseAllowedHostPaths } from "./host-paths.js";

describe("parseAllowedHostPaths", () => {
  it.each([
    ["", []],
    [undefined, []],
    ["/srv/projects", [{ prefix: "/srv/projects", writable: false }]],
    [
      "/srv/projects:rw, /data/ro/",
      [
        { prefix: "/srv/projects", writable: true },
        { prefix: "/data/ro", writable: false },
      ],
    ],
  ])("%j", (flag, want) => expect(parseAllowedHostPaths(flag)).toEqual(want));

  it.each(["srv", "/srv/../etc", "/srv:ro", "/a/./b"])("refuses %j", (flag) =>
    expect(() => parseAllowedHostPaths(flag)).toThrow(),
  );
});

describe("isUnder", () => {
  it.each([
    ["/srv/a", "/srv", true],
    ["/srv", "/srv", true],
    ["/srvx", "/srv", false],
    ["/srv/ab", "/srv/a", false],
    ["/anything", "/", true],
  ])("%s under %s: %s", (path, prefix, want) => expect(isUnder(path, prefix)).toBe(want));
});

const allow = parseAllowedHostPaths("/srv/ro,/srv/rw:rw");

describe("judgeHostPath", () => {
  const cases: Array<[string, string, string | undefined, boolean | undefined, unknown]> = [
    ["read-only by default", "/srv/ro/a", undefined, undefined, { allowed: true, readOnly: true }],
    ["explicit read-only", "/srv/rw/a", undefined, true, { allowed: true, readOnly: true }],
    ["writable under :rw", "/srv/rw/a", undefined, false, { allowed: true, readOnly: false }],
    ["the prefix itself", "/srv/ro", undefined, undefined, { allowed: true, readOnly: true }],
  ];
  it.each(cases)("%s", (_n, path, resolved, readOnly, want) =>
    expect(judgeHostPath(path, resolved, readOnly, allow)).toEqual(want),
  );

  it("refuses a path outside, naming it and the allowlist", () => {
    const v = judgeHostPath("/etc", undefined, undefined, allow);
    expect(v).toEqual({
      allowed: false,
      message: "host path /etc is outside --docker-allowed-host-paths (/srv/ro, /srv/rw:rw)",
    });
  });

  it("refuses a sibling that shares a string prefix", () => {
    expect(judgeHostPath("/srv/rox", undefined, undefined, allow).allowed).toBe(false);
  });

  it("refuses a symlink inside that resolves outside", () => {
    const v = judgeHostPath("/srv/ro/link", "/etc", undefined, allow);
    expect(v.allowed).toBe(false);
    expect(!v.allowed && v.message).toContain("/srv/ro/link (resolves to /etc)");
  });

  it("refuses write where only a read-only entry covers the resolved path", () => {
    const v = judgeHostPath("/srv/rw/link", "/srv/ro/x", false, allow);
    expect(v.allowed).toBe(false);
    expect(!v.allowed && v.message).toContain("may only be mounted read-only");
  });

  it("refuses write under a read-only entry", () => {
    expect(judgeHostPath("/srv/ro/a", undefined, false, allow).allowed).toBe(false);
  });

  it("refuses everything with an empty allowlist", () => {
    const v = judgeHostPath("/srv/ro/a", undefined, undefined, []);
    expect(!v.allowed && v.message).toContain("allows no host paths");
  });
});
