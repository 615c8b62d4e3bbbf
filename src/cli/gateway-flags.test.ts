import { describe, expect, it } from "vitest";
import { parseGatewayFlags } from "./gateway.js";

describe("gateway flags: slow clients and connections", () => {
  it("default to the documented values (seconds)", () => {
    expect(parseGatewayFlags([])).toMatchObject({
      "headers-timeout": 15,
      "body-idle-timeout": 60,
      "request-timeout": 3600,
      "keep-alive-timeout": 5,
      "max-connections": 4096,
    });
  });

  it("take other values; 0 turns only the request timeout off", () => {
    expect(
      parseGatewayFlags([
        "--headers-timeout=5",
        "--body-idle-timeout=30",
        "--request-timeout=0",
        "--keep-alive-timeout=65",
        "--max-connections=100",
      ]),
    ).toMatchObject({
      "headers-timeout": 5,
      "body-idle-timeout": 30,
      "request-timeout": 0,
      "keep-alive-timeout": 65,
      "max-connections": 100,
    });
  });

  it.each([
    ["--headers-timeout=0", "--headers-timeout"],
    ["--body-idle-timeout=-1", "--body-idle-timeout"],
    ["--max-connections=x", "--max-connections"],
  ])("refuses %s naming the flag", (arg, flag) => {
    expect(parseGatewayFlags([arg])).toMatch(new RegExp(`^${flag}:`));
  });
});
