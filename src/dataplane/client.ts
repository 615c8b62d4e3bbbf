// The data-plane client: speaks the agent's protocol (docs/agent-protocol.md)
// over whatever transport reached the agent's port (a published loopback port,
// a Kubernetes port-forward). Backend-neutral: it only needs host, port, token.
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import type { z } from "zod";
import { agentErrorOf, ProtocolError, SandboxError } from "./errors.js";
import { encodeFrame, encodeFrames, FrameDecoder } from "./frames.js";
import {
  type Activity,
  ActivitySchema,
  type AgentVersion,
  ErrorBodySchema,
  type ExecSpec,
  ExecSpecSchema,
  type ExitStatus,
  ExitStatusSchema,
  type FileInfo,
  FileInfoSchema,
  FileListSchema,
  FrameType,
  type ProcessInfo,
  ProcessInfoSchema,
  ProcessListSchema,
  type ProcessOutput,
  ProcessOutputSchema,
  StartedSchema,
  type TtySize,
  UntarSummarySchema,
  VersionSchema,
  WriteResultSchema,
} from "./protocol.js";

/** Where an agent answers: host and port reachable from here, and its credential. */
export interface AgentEndpoint {
  host: string;
  port: number;
  token: string;
  /**
   * Through the gateway: the agent's "/v1/..." routes live under this path
   * ("/v1/namespaces/{ns}/sandboxes/{name}"), over TLS when `tls` is set.
   */
  basePath?: string;
  tls?: boolean;
}

export type Body = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

export interface ExecOptions extends Omit<ExecSpec, "argv" | "stdin"> {
  /** Sent to the process's stdin, then EOF. Absent: the process reads /dev/null. */
  stdin?: Body;
  /** Aborting kills the process group (the agent sees its client go). */
  signal?: AbortSignal;
  /** Called with output as it arrives (the buffered result still has it all). */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

export interface ExecResult extends ExitStatus {
  /** The process's ID in the agent (for logs and signals while it ran). */
  id: string;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
  stderrBytes: Buffer;
}

/** A running foreground exec: stream its output, feed stdin, resize, signal, await exit. */
export interface ExecHandle {
  readonly started: Promise<{ id: string; pid: number }>;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exit: Promise<ExitStatus>;
  write(data: Uint8Array | string): void;
  /** Close stdin. */
  end(): void;
  resize(size: TtySize): void;
  kill(signal?: string): void;
}

export interface ReadOptions {
  offset?: number;
  length?: number;
}

export interface WriteOptions {
  /** Octal permission bits, e.g. "644" or 0o644. */
  mode?: string | number;
  /** Create missing parent directories. */
  parents?: boolean;
  append?: boolean;
}

export class AgentClient {
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;

  constructor(
    readonly endpoint: AgentEndpoint,
    options: { maxSockets?: number } = {},
  ) {
    this.transport = endpoint.tls ? https : http;
    this.agent = new this.transport.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets ?? 256,
    });
  }

  /** The agent's route as this endpoint serves it (directly, or under the gateway's sandbox path). */
  private route(path: string): string {
    const base = this.endpoint.basePath;
    if (!base) return path;
    if (path === "/healthz") return `${base}/version`;
    return `${base}${path.replace(/^\/v1/, "")}`;
  }

  close(): void {
    this.agent.destroy();
  }

  async healthy(): Promise<boolean> {
    try {
      const res = await this.send("GET", "/healthz", {}, undefined, false);
      res.resume();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  version(): Promise<AgentVersion> {
    return this.json("GET", "/v1/version", {}, undefined, VersionSchema);
  }

  /** How long the sandbox has gone unused (docs/idle.md); this read is not use. */
  activity(): Promise<Activity> {
    return this.json("GET", "/v1/activity", {}, undefined, ActivitySchema);
  }

  /** Report use the agent did not see (port traffic the gateway proxied). */
  async reportActivity(): Promise<void> {
    (await this.send("POST", "/v1/activity", {})).resume();
  }

  // --- exec ------------------------------------------------------------------

  /** Runs argv to completion and returns its output and exit status (non-zero exit is a result). */
  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const handle = this.execStream(argv, options);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    handle.stdout.on("data", (c: Buffer) => {
      out.push(c);
      options.onStdout?.(c);
    });
    handle.stderr.on("data", (c: Buffer) => {
      err.push(c);
      options.onStderr?.(c);
    });
    const [status, started] = await Promise.all([handle.exit, handle.started]);
    const stdoutBytes = Buffer.concat(out);
    const stderrBytes = Buffer.concat(err);
    return {
      ...status,
      id: started.id,
      stdoutBytes,
      stderrBytes,
      stdout: stdoutBytes.toString("utf8"),
      stderr: stderrBytes.toString("utf8"),
    };
  }

  /** Starts argv and streams: the handle's exit settles with the exit status. */
  execStream(argv: string[], options: ExecOptions = {}): ExecHandle {
    const { stdin, signal, onStdout: _o, onStderr: _e, ...rest } = options;
    const spec = ExecSpecSchema.parse({ ...rest, argv, stdin: stdin !== undefined || !!rest.tty });
    const stdout = new Readable({ read() {} });
    const stderr = new Readable({ read() {} });
    let resolveStarted!: (s: { id: string; pid: number }) => void;
    let rejectStarted!: (e: unknown) => void;
    const started = new Promise<{ id: string; pid: number }>((res, rej) => {
      resolveStarted = res;
      rejectStarted = rej;
    });
    started.catch(() => {});
    let stdinOpen = spec.stdin === true;

    const req = this.transport.request({
      agent: this.agent,
      host: this.endpoint.host,
      port: this.endpoint.port,
      method: "POST",
      path: this.route("/v1/exec"),
      headers: {
        authorization: `Bearer ${this.endpoint.token}`,
        "content-type": "application/vnd.sandbox-agent.frames",
        "transfer-encoding": "chunked",
      },
      signal,
    });
    req.setNoDelay(true);
    req.write(encodeFrame(FrameType.spec, Buffer.from(JSON.stringify(spec))));
    const sendFrame = (type: number, payload?: Uint8Array) => {
      if (!req.writableEnded && !req.destroyed) req.write(encodeFrame(type, payload));
    };
    const closeStdin = () => {
      if (stdinOpen) sendFrame(FrameType.stdinEof);
      stdinOpen = false;
      if (!req.writableEnded) req.end();
    };

    const exit = new Promise<ExitStatus>((resolve, reject) => {
      const fail = (e: unknown) => {
        const err = e instanceof Error ? e : new SandboxError(String(e));
        rejectStarted(err);
        stdout.destroy();
        stderr.destroy();
        reject(err);
      };
      req.on("error", fail);
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          readError(res)
            .then(fail, fail)
            .finally(() => req.destroy());
          return;
        }
        const dec = new FrameDecoder();
        let done = false;
        res.on("data", (chunk: Buffer) => {
          let frames: ReturnType<FrameDecoder["push"]>;
          try {
            frames = dec.push(chunk);
          } catch (e) {
            fail(e);
            req.destroy();
            return;
          }
          for (const f of frames) {
            switch (f.type) {
              case FrameType.started:
                resolveStarted(StartedSchema.parse(JSON.parse(f.payload.toString())));
                break;
              case FrameType.stdout:
                stdout.push(Buffer.from(f.payload));
                break;
              case FrameType.stderr:
                stderr.push(Buffer.from(f.payload));
                break;
              case FrameType.exit:
                done = true;
                stdout.push(null);
                stderr.push(null);
                if (!req.writableEnded) req.end();
                resolve(ExitStatusSchema.parse(JSON.parse(f.payload.toString())));
                break;
              case FrameType.error: {
                done = true;
                const body = JSON.parse(f.payload.toString());
                fail(agentErrorOf(500, body, "exec failed"));
                break;
              }
            }
          }
        });
        res.on("end", () => {
          if (!done)
            fail(new ProtocolError("the agent closed the exec stream without an exit status"));
        });
        res.on("error", fail);
      });
    });
    exit.catch(() => {});

    if (stdin !== undefined) {
      // Waits for 'drain' when the socket's buffer is full: a large stdin
      // streams in bounded memory.
      pipeStdin(stdin, async (b) => {
        for (const f of encodeFrames(FrameType.stdin, b)) {
          if (req.destroyed) return;
          if (!req.write(f)) await new Promise((r) => req.once("drain", r));
        }
      }).then(closeStdin, (e) => req.destroy(e as Error));
    } else if (!spec.tty) {
      req.end();
    }

    return {
      started,
      stdout,
      stderr,
      exit,
      write: (data) => {
        const b = typeof data === "string" ? Buffer.from(data) : data;
        for (const f of encodeFrames(FrameType.stdin, b)) sendFrame(f[0]!, f.subarray(5));
      },
      end: closeStdin,
      resize: (size) => sendFrame(FrameType.resize, Buffer.from(JSON.stringify(size))),
      kill: (sig = "SIGKILL") =>
        sendFrame(FrameType.signal, Buffer.from(JSON.stringify({ signal: sig }))),
    };
  }

  // --- background processes ---------------------------------------------------

  startProcess(argv: string[], options: Omit<ExecSpec, "argv"> = {}): Promise<ProcessInfo> {
    const spec = ExecSpecSchema.parse({ ...options, argv });
    return this.json("POST", "/v1/processes", {}, spec, ProcessInfoSchema);
  }

  async listProcesses(): Promise<ProcessInfo[]> {
    return (await this.json("GET", "/v1/processes", {}, undefined, ProcessListSchema)).processes;
  }

  getProcess(id: string): Promise<ProcessInfo> {
    return this.json("GET", `/v1/processes/${enc(id)}`, {}, undefined, ProcessInfoSchema);
  }

  /** Waits up to timeoutMs (agent max 5 min) for the process to end; running tells which happened. */
  waitProcess(id: string, timeoutMs = 300_000): Promise<ProcessInfo> {
    return this.json(
      "GET",
      `/v1/processes/${enc(id)}/wait`,
      { timeoutMs },
      undefined,
      ProcessInfoSchema,
    );
  }

  processOutput(
    id: string,
    from: { stdoutOffset?: number; stderrOffset?: number; waitMs?: number } = {},
  ): Promise<ProcessOutput> {
    return this.json(
      "GET",
      `/v1/processes/${enc(id)}/output`,
      from,
      undefined,
      ProcessOutputSchema,
    );
  }

  async writeProcessStdin(id: string, data: Body, eof = false): Promise<void> {
    const q = eof ? { eof: "true" } : {};
    (await this.send("POST", `/v1/processes/${enc(id)}/stdin`, q, data)).resume();
  }

  async signalProcess(id: string, signal: string): Promise<void> {
    await this.json("POST", `/v1/processes/${enc(id)}/signal`, {}, { signal });
  }

  async resizeProcess(id: string, size: TtySize): Promise<void> {
    await this.json("POST", `/v1/processes/${enc(id)}/resize`, {}, size);
  }

  /** Kills (SIGKILL to its group) and forgets a process. */
  async killProcess(id: string): Promise<void> {
    (await this.send("DELETE", `/v1/processes/${enc(id)}`, {})).resume();
  }

  // --- files -------------------------------------------------------------------

  /** Streams a file (or a byte range). */
  async readStream(path: string, range: ReadOptions = {}): Promise<Readable> {
    return this.send("GET", "/v1/files/content", { path, ...range });
  }

  async readFile(path: string, range: ReadOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.readStream(path, range)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async readText(path: string): Promise<string> {
    return (await this.readFile(path)).toString("utf8");
  }

  /** Writes (streams) data into a file, created or truncated (or appended to). */
  async writeFile(
    path: string,
    data: Body,
    options: WriteOptions = {},
  ): Promise<{ bytes: number }> {
    const mode = typeof options.mode === "number" ? options.mode.toString(8) : options.mode;
    const q = {
      path,
      ...(mode ? { mode } : {}),
      ...(options.parents ? { parents: "true" } : {}),
      ...(options.append ? { append: "true" } : {}),
    };
    const res = await this.send("PUT", "/v1/files/content", q, data);
    return parseJson(res, WriteResultSchema);
  }

  stat(path: string): Promise<FileInfo> {
    return this.json("GET", "/v1/files/stat", { path }, undefined, FileInfoSchema);
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return false;
      throw e;
    }
  }

  async list(path: string): Promise<FileInfo[]> {
    return (await this.json("GET", "/v1/files/list", { path }, undefined, FileListSchema)).entries;
  }

  mkdir(path: string, options: { parents?: boolean; mode?: string } = {}): Promise<FileInfo> {
    return this.json("POST", "/v1/files/mkdir", {}, { path, ...options }, FileInfoSchema);
  }

  move(from: string, to: string, options: { overwrite?: boolean } = {}): Promise<FileInfo> {
    return this.json("POST", "/v1/files/move", {}, { from, to, ...options }, FileInfoSchema);
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    (await this.send("POST", "/v1/files/remove", {}, jsonBody({ path, ...options }))).resume();
  }

  /** A tar stream of path (names relative to its parent, like `docker cp`). */
  downloadTar(path: string): Promise<Readable> {
    return this.send("GET", "/v1/files/archive", { path });
  }

  async uploadTar(dir: string, tar: Body) {
    return parseJson(
      await this.send("PUT", "/v1/files/archive", { path: dir }, tar),
      UntarSummarySchema,
    );
  }

  // --- plumbing ----------------------------------------------------------------

  private async json<T>(
    method: string,
    path: string,
    query: Record<string, string | number | undefined>,
    body: unknown,
    schema?: z.ZodType<T>,
  ): Promise<T> {
    const res = await this.send(
      method,
      path,
      query,
      body === undefined ? undefined : jsonBody(body),
    );
    if (!schema) {
      res.resume();
      return undefined as T;
    }
    return parseJson(res, schema);
  }

  /** One request; a non-2xx answer becomes a typed error. */
  send(
    method: string,
    path: string,
    query: Record<string, string | number | undefined>,
    body?: Body | JsonBody,
    auth = true,
  ): Promise<http.IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
    const full = qs.size ? `${path}?${qs}` : path;
    const isJson = body instanceof JsonBody;
    return new Promise((resolve, reject) => {
      const req = this.transport.request(
        {
          agent: this.agent,
          host: this.endpoint.host,
          port: this.endpoint.port,
          method,
          path: this.route(full),
          headers: {
            // Through the gateway every route (health too) needs the credential.
            ...(auth || this.endpoint.basePath
              ? { authorization: `Bearer ${this.endpoint.token}` }
              : {}),
            ...(isJson ? { "content-type": "application/json" } : {}),
          },
        },
        (res) => {
          if ((res.statusCode ?? 500) >= 300) readError(res).then(reject, reject);
          else resolve(res);
        },
      );
      req.on("error", reject);
      if (body === undefined) req.end();
      else if (isJson) req.end(body.text);
      else if (typeof body === "string" || body instanceof Uint8Array) req.end(body);
      else {
        const src = body instanceof Readable ? body : Readable.from(body);
        src.on("error", (e) => req.destroy(e));
        src.pipe(req);
      }
    });
  }
}

class JsonBody {
  constructor(readonly text: string) {}
}

function jsonBody(v: unknown): JsonBody {
  return new JsonBody(JSON.stringify(v));
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

async function readAll(res: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function parseJson<T>(res: http.IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const text = (await readAll(res)).toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError(
      `the agent answered with something that is not JSON: ${text.slice(0, 200)}`,
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new ProtocolError(`unexpected answer from the agent: ${parsed.error.message}`);
  return parsed.data;
}

async function readError(res: http.IncomingMessage): Promise<Error> {
  const text = (await readAll(res)).toString("utf8");
  let body: { code: string; message: string; path?: string } | undefined;
  try {
    body = ErrorBodySchema.parse(JSON.parse(text)).error;
  } catch {
    body = undefined;
  }
  return agentErrorOf(res.statusCode ?? 500, body, `HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
}

async function pipeStdin(data: Body, write: (b: Uint8Array) => Promise<void>): Promise<void> {
  if (typeof data === "string") return write(Buffer.from(data));
  if (data instanceof Uint8Array) return write(data);
  for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
    await write(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  }
}
