// The gateway's OpenAPI 3.1 document, generated from the same zod schemas the
// agent's client and the gateway validate with (src/dataplane/protocol.ts,
// mint.ts), so the document cannot drift from what is served.
import { z } from "zod";
import {
  ErrorBodySchema,
  ExecSpecSchema,
  FileInfoSchema,
  FileListSchema,
  ProcessInfoSchema,
  ProcessListSchema,
  ProcessOutputSchema,
  UntarSummarySchema,
  VersionSchema,
  WriteResultSchema,
} from "../dataplane/protocol.js";
import { MintRequestSchema, MintResponseSchema } from "./mint.js";

const schemas = {
  Error: ErrorBodySchema,
  ExecSpec: ExecSpecSchema,
  FileInfo: FileInfoSchema,
  FileList: FileListSchema,
  ProcessInfo: ProcessInfoSchema,
  ProcessList: ProcessListSchema,
  ProcessOutput: ProcessOutputSchema,
  UntarSummary: UntarSummarySchema,
  Version: VersionSchema,
  WriteResult: WriteResultSchema,
  MintRequest: MintRequestSchema,
  MintResponse: MintResponseSchema,
};

const ref = (name: keyof typeof schemas) => ({ $ref: `#/components/schemas/${name}` });
const jsonOf = (name: keyof typeof schemas) => ({
  content: { "application/json": { schema: ref(name) } },
});
const FRAMES = "application/vnd.sandbox-agent.frames";
const bytes = { schema: { type: "string", format: "binary" } };
const q = (name: string, description: string, required = false) => ({
  name,
  in: "query",
  required,
  description,
  schema: { type: "string" },
});
const errors = {
  "400": { description: "Bad request", ...jsonOf("Error") },
  "401": { description: "No valid credential", ...jsonOf("Error") },
  "403": {
    description:
      "The credential does not allow this verb on this sandbox (or names another incarnation)",
    ...jsonOf("Error"),
  },
  "404": { description: "No such sandbox, path or process", ...jsonOf("Error") },
  "409": { description: "The sandbox is being deleted", ...jsonOf("Error") },
  "413": { description: "Body over the gateway's limit", ...jsonOf("Error") },
  "429": { description: "Rate or concurrency limit (Retry-After)", ...jsonOf("Error") },
  "503": {
    description: "The sandbox (or the authorizer) cannot be reached now",
    ...jsonOf("Error"),
  },
};
const op = (summary: string, verb: string, extra: object) => ({
  summary,
  "x-sandbox-verb": verb,
  security: [{ bearer: [] }],
  ...extra,
  responses: { ...(extra as { responses?: object }).responses, ...errors },
});

export function openApiDocument(domain?: string): object {
  const base = "/v1/namespaces/{namespace}/sandboxes/{name}";
  const params = [
    { name: "namespace", in: "path", required: true, schema: { type: "string" } },
    { name: "name", in: "path", required: true, schema: { type: "string" } },
  ];
  return {
    openapi: "3.1.0",
    info: {
      title: "sandbox-operator gateway",
      version: "v1",
      description:
        "One authenticated entry to every sandbox's data plane and declared ports. Credentials: a Kubernetes bearer token (authorized by RBAC verbs exec, files, connect, logs, get, mint on sandboxes.sandboxing.dev) or a scoped token minted here. Exec streams use the agent's frame format (docs/agent-protocol.md) over a full-duplex HTTP body (POST) or a WebSocket (GET with Upgrade; binary messages carry the frame stream, frames may span messages).",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: Object.fromEntries(
        Object.entries(schemas).map(([k, s]) => [
          k,
          z.toJSONSchema(s as z.ZodType, { io: "input", unrepresentable: "any" }),
        ]),
      ),
    },
    paths: {
      [base]: {
        parameters: params,
        get: op("The Sandbox resource (metadata, ports, status)", "get", {
          responses: { "200": { description: "The Sandbox" } },
        }),
      },
      [`${base}/tokens`]: {
        parameters: params,
        post: op(
          "Mint a token scoped to this sandbox (Kubernetes identities holding mint and every verb granted)",
          "mint",
          {
            requestBody: jsonOf("MintRequest"),
            responses: { "201": { description: "Minted", ...jsonOf("MintResponse") } },
          },
        ),
      },
      [`${base}/exec`]: {
        parameters: params,
        post: op(
          "Run a command: request and response bodies are frame streams (first frame: ExecSpec)",
          "exec",
          {
            requestBody: { content: { [FRAMES]: bytes } },
            responses: {
              "200": {
                description: "Frames: started, stdout, stderr, exit",
                content: { [FRAMES]: bytes },
              },
            },
          },
        ),
        get: op(
          "The same over a WebSocket (Upgrade: websocket; browsers: subprotocol bearer.<token>)",
          "exec",
          { responses: { "101": { description: "Switching protocols" } } },
        ),
      },
      [`${base}/processes`]: {
        parameters: params,
        get: op("Background processes", "exec", {
          responses: { "200": { description: "List", ...jsonOf("ProcessList") } },
        }),
        post: op("Start a background process", "exec", {
          requestBody: jsonOf("ExecSpec"),
          responses: { "201": { description: "Started", ...jsonOf("ProcessInfo") } },
        }),
      },
      [`${base}/processes/{id}`]: {
        parameters: [
          ...params,
          { name: "id", in: "path", required: true, schema: { type: "string" } },
        ],
        get: op("One process", "exec", {
          responses: { "200": { description: "Process", ...jsonOf("ProcessInfo") } },
        }),
        delete: op("Kill and forget", "exec", { responses: { "204": { description: "Gone" } } }),
      },
      [`${base}/processes/{id}/wait`]: {
        parameters: [
          ...params,
          { name: "id", in: "path", required: true, schema: { type: "string" } },
        ],
        get: op("Wait for exit", "exec", {
          parameters: [q("timeoutMs", "Longest wait")],
          responses: { "200": { description: "Process", ...jsonOf("ProcessInfo") } },
        }),
      },
      [`${base}/processes/{id}/output`]: {
        parameters: [
          ...params,
          { name: "id", in: "path", required: true, schema: { type: "string" } },
        ],
        get: op("Buffered output from offsets", "exec", {
          parameters: [q("stdoutOffset", ""), q("stderrOffset", ""), q("waitMs", "Long poll")],
          responses: { "200": { description: "Output", ...jsonOf("ProcessOutput") } },
        }),
      },
      [`${base}/files/content`]: {
        parameters: [...params, q("path", "File path", true)],
        get: op("Read a file (streamed)", "files", {
          parameters: [q("offset", ""), q("length", "")],
          responses: {
            "200": { description: "Bytes", content: { "application/octet-stream": bytes } },
          },
        }),
        put: op("Write a file (streamed)", "files", {
          parameters: [q("mode", "Octal"), q("parents", "true"), q("append", "true")],
          requestBody: { content: { "application/octet-stream": bytes } },
          responses: { "200": { description: "Written", ...jsonOf("WriteResult") } },
        }),
      },
      [`${base}/files/stat`]: {
        parameters: [...params, q("path", "", true)],
        get: op("Stat", "files", {
          responses: { "200": { description: "Info", ...jsonOf("FileInfo") } },
        }),
      },
      [`${base}/files/list`]: {
        parameters: [...params, q("path", "", true)],
        get: op("List a directory", "files", {
          responses: { "200": { description: "Entries", ...jsonOf("FileList") } },
        }),
      },
      [`${base}/files/archive`]: {
        parameters: [...params, q("path", "", true)],
        get: op("Download as tar", "files", {
          responses: { "200": { description: "tar", content: { "application/x-tar": bytes } } },
        }),
        put: op("Upload a tar", "files", {
          requestBody: { content: { "application/x-tar": bytes } },
          responses: { "200": { description: "Extracted", ...jsonOf("UntarSummary") } },
        }),
      },
      [`${base}/version`]: {
        parameters: params,
        get: op("The agent's version", "get", {
          responses: { "200": { description: "Version", ...jsonOf("Version") } },
        }),
      },
      [`${base}/logs`]: {
        parameters: params,
        get: op("The workload's output from the runtime, as stdout/stderr frames", "logs", {
          parameters: [
            q("follow", "true"),
            q("tail", "Lines"),
            q("since", "Unix seconds or RFC 3339"),
          ],
          responses: { "200": { description: "Frames", content: { [FRAMES]: bytes } } },
        }),
      },
      "/sandboxes/{namespace}/{name}/ports/{port}/{path}": {
        description: `Any method, HTTP or WebSocket, to a declared port (the workload sees /{path}, with X-Forwarded-For/Host/Proto/Prefix).${domain ? ` Also by host: {port}-{name}--{namespace}.${domain}.` : ""} Private ports need the connect verb (Authorization, or X-Sandbox-Token to leave Authorization to the workload); public ones (spec.ports[].visibility: public) serve anyone.`,
        parameters: [
          ...params,
          { name: "port", in: "path", required: true, schema: { type: "integer" } },
          { name: "path", in: "path", required: true, schema: { type: "string" } },
        ],
      },
    },
  };
}
