import * as k8s from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  ConflictError,
  classifyError,
  errorMessage,
  fromApiError,
  isConflict,
  isNotFound,
  NotFoundError,
  PermanentError,
} from "./errors.js";
import { ApiError } from "./raw-request.js";

const apiException = (code: number, reason: string, message: string) =>
  new k8s.ApiException(code, "x", JSON.stringify({ kind: "Status", code, reason, message }), {});

describe("classifyError", () => {
  it("sorts API errors by what a retry can do", () => {
    expect(classifyError(apiException(409, "Conflict", "modified"))).toBe("conflict");
    expect(classifyError(apiException(404, "NotFound", "gone"))).toBe("notFound");
    expect(classifyError(apiException(422, "Invalid", "bad"))).toBe("permanent");
    expect(classifyError(apiException(400, "BadRequest", "bad"))).toBe("permanent");
    for (const code of [401, 403, 410, 429, 500, 503]) {
      expect(classifyError(apiException(code, "X", "y"))).toBe("transient");
    }
    expect(classifyError(new ApiError(409, "conflict"))).toBe("conflict");
    expect(classifyError(new Error("ECONNRESET"))).toBe("transient");
    expect(classifyError("a string")).toBe("transient");
  });

  it("knows the typed errors", () => {
    expect(classifyError(new PermanentError("Unsupported", "no such thing"))).toBe("permanent");
    expect(isConflict(new ConflictError("stale"))).toBe(true);
    expect(isNotFound(new NotFoundError("gone"))).toBe(true);
  });
});

describe("fromApiError", () => {
  it("turns API errors into typed errors: a refusal becomes a Rejected condition with the apiserver's message", () => {
    const invalid = fromApiError(apiException(422, "Invalid", 'Sandbox "x" is invalid'));
    expect(invalid).toBeInstanceOf(PermanentError);
    expect(invalid).toMatchObject({
      reason: "Rejected",
      message: 'Sandbox "x" is invalid (HTTP 422)',
    });
    expect(fromApiError(apiException(409, "Conflict", "m"))).toBeInstanceOf(ConflictError);
    expect(fromApiError(new ApiError(404, "GET /x: not found"))).toBeInstanceOf(NotFoundError);
    const other = new Error("timeout");
    expect(fromApiError(other)).toBe(other);
  });
});

describe("errorMessage", () => {
  it("prefers the Status' message", () => {
    expect(errorMessage(apiException(403, "Forbidden", "forbidden: no"))).toBe(
      "forbidden: no (HTTP 403)",
    );
    expect(errorMessage(new k8s.ApiException(500, "x", "not json", {}))).toBe("HTTP 500");
    expect(errorMessage(new Error("plain"))).toBe("plain");
  });

  it("gives a raw request's error the same words as the typed clients'", () => {
    const err = new ApiError(403, "POST /api/v1/namespaces/a/pods: forbidden: no (HTTP 403)", {
      message: "forbidden: no",
    });
    expect(errorMessage(err)).toBe("forbidden: no (HTTP 403)");
    expect(errorMessage(new ApiError(502, "GET /x: bad gateway (HTTP 502)"))).toBe(
      "GET /x: bad gateway (HTTP 502)",
    );
  });
});
