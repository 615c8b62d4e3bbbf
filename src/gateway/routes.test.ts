import { describe, expect, it } from "vitest";
import { parsePortHost, route } from "./routes.js";

const B = "/v1/namespaces/team-a/sandboxes/box";

describe("route", () => {
  it.each([
    ["GET", `${B}`, { kind: "sandbox", verb: "get", namespace: "team-a", name: "box" }],
    ["POST", `${B}/tokens`, { kind: "mint", verb: "mint" }],
    ["GET", `${B}/logs?follow=true`, { kind: "logs", verb: "logs" }],
    ["POST", `${B}/exec`, { kind: "agent", verb: "exec", agentPath: "/v1/exec", websocket: false }],
    [
      "GET",
      `${B}/processes/p1/output?waitMs=10`,
      { kind: "agent", verb: "exec", agentPath: "/v1/processes/p1/output?waitMs=10" },
    ],
    ["DELETE", `${B}/processes/p1`, { kind: "agent", verb: "exec" }],
    [
      "PUT",
      `${B}/files/content?path=/a%20b`,
      { kind: "agent", verb: "files", agentPath: "/v1/files/content?path=/a%20b" },
    ],
    ["GET", `${B}/version`, { kind: "agent", verb: "get" }],
    [
      "GET",
      "/sandboxes/team-a/box/ports/8000/api/x?y=1",
      {
        kind: "port",
        verb: "connect",
        port: 8000,
        path: "/api/x?y=1",
        prefix: "/sandboxes/team-a/box/ports/8000",
      },
    ],
    ["GET", "/sandboxes/team-a/box/ports/8000", { kind: "port", path: "/" }],
    ["GET", "/openapi.json", { kind: "openapi" }],
  ])("%s %s", (method, url, want) => {
    expect(route(method, url, "gw.example")).toMatchObject(want);
  });

  it.each([
    ["GET", `${B}/exec`, 400], // WebSocket form without an upgrade
    ["GET", `${B}/files/../../etc`, 400],
    ["GET", `${B}/files/content%2f..`, 400],
    ["GET", `${B}/healthz`, 404], // not an agent route on the list
    ["GET", `${B}/files/chmod`, 404],
    ["POST", `${B}`, 405],
    ["GET", `${B}/tokens`, 405],
    ["DELETE", `${B}/files/content`, 405],
    ["GET", "/v1/namespaces/Team/sandboxes/box", 404], // not a namespace name
    ["GET", "/v1/namespaces/a/sandboxes/b.c", 404], // not a sandbox name
    ["GET", "/sandboxes/a/b/ports/70000/", 404],
    ["GET", "/sandboxes/a/b/ports/0/", 404],
    ["GET", "/elsewhere", 404],
  ])("%s %s is refused with %i", (method, url, status) => {
    expect(route(method, url, "gw.example")).toMatchObject({ kind: "error", status });
  });

  it("takes the exec WebSocket only on an upgrade", () => {
    expect(route("GET", `${B}/exec`, undefined, { websocket: true })).toMatchObject({
      kind: "agent",
      websocket: true,
    });
  });
});

describe("parsePortHost", () => {
  it.each([
    ["8000-box--team-a.sbx.example.com", { port: 8000, name: "box", namespace: "team-a" }],
    [
      "8000-my-box--team-a.sbx.example.com:443",
      { port: 8000, name: "my-box", namespace: "team-a" },
    ],
    ["80-a--b.SBX.example.com", { port: 80, name: "a", namespace: "b" }],
  ])("%s", (host, want) => {
    expect(parsePortHost(host, "sbx.example.com")).toEqual(want);
  });

  it.each([
    "8000-box--team-a.other.com",
    "box--team-a.sbx.example.com",
    "8000-box-team-a.sbx.example.com",
    "99999-box--a.sbx.example.com",
    "8000-box--a.b.sbx.example.com",
    "sbx.example.com",
  ])("%s is not a port host", (host) => {
    expect(parsePortHost(host, "sbx.example.com")).toBeUndefined();
  });

  it("routes by host before path", () => {
    expect(
      route("POST", "/v1/namespaces/x/sandboxes/y/exec", "8000-box--a.sbx.example.com", {
        domain: "sbx.example.com",
      }),
    ).toMatchObject({
      kind: "port",
      name: "box",
      path: "/v1/namespaces/x/sandboxes/y/exec",
    });
  });
});
