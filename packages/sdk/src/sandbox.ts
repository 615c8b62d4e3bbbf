// The SDK's Sandbox: the Kubernetes resource (create, get, list, renew,
// delete through the API server) plus its data plane (exec, processes, files,
// logs, ports through the in-sandbox agent). An exit code other than 0 is a
// result; everything that goes wrong is a typed error (../../../src/dataplane/errors).
import { connect as netConnect, type Socket } from "node:net";
import type { Readable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { ConditionType } from "../../../src/api/conditions.js";
import {
  API_VERSION,
  CLAIM_PLURAL,
  GROUP,
  SANDBOX_KIND,
  SANDBOX_PLURAL,
  TEMPLATE_PLURAL,
  VERSION,
} from "../../../src/api/group.js";
import { IdleMark } from "../../../src/api/idle.js";
import { Labels } from "../../../src/api/labels.js";
import type { SandboxClaim } from "../../../src/api/pools.js";
import type { Sandbox as SandboxResource } from "../../../src/api/sandbox.js";
import { type SandboxSpecInput, SandboxSpecSchema } from "../../../src/api/sandbox-spec.js";
import { answers } from "../../../src/dataplane/answers.js";
import type {
  AgentClient,
  Body,
  ExecHandle,
  ExecOptions,
  ExecResult,
  ReadOptions,
  WriteOptions,
} from "../../../src/dataplane/client.js";
import { connect, type DataPlane } from "../../../src/dataplane/connect.js";
import {
  ClaimFailedError,
  SandboxError,
  SandboxNotFoundError,
  SandboxNotReadyError,
  SandboxSuspendedError,
  TimeoutError,
  UnauthorizedError,
} from "../../../src/dataplane/errors.js";
import {
  type GatewayConfig,
  type GatewayDataPlane,
  gatewayDataPlane,
  gatewayFromEnv,
  gatewayGetSandbox,
  NAMESPACE_ENV,
} from "../../../src/dataplane/gateway.js";
import type { LogOptions, LogStreams } from "../../../src/dataplane/logs.js";
import type { ExecSpec, FileInfo, ProcessInfo } from "../../../src/dataplane/protocol.js";
import {
  afterUnreachable,
  asleep,
  resumePatch,
  WakeRefusedError,
  WakeTimeoutError,
  wake,
} from "../../../src/idle/wake.js";
import { ReusingKubeConfig, reusingCopy } from "../../../src/kube/config.js";
import {
  type ClaimInfo,
  type ClaimOptions,
  claimBody,
  claimInfoOf,
  claimVerdict,
} from "./claim.js";
import { type Check, pollSource, type Source, until, watchSource } from "./watch.js";

export interface ClientOptions {
  /** A KubeConfig, or a kubeconfig path (default: KUBECONFIG / ~/.kube/config / in-cluster). */
  kubeconfig?: k8s.KubeConfig | string;
  /** Namespace (default: the kubeconfig context's, else "default"). */
  namespace?: string;
  /** Docker client for docker-backend sandboxes (default: DOCKER_HOST or the local socket). */
  docker?: Docker;
  /**
   * Reach sandboxes through a gateway (default: SANDBOX_GATEWAY_URL with
   * SANDBOX_GATEWAY_TOKEN[_FILE] when set and no kubeconfig is given).
   * get/exec/files/processes/logs/fetch work with only this; create, list,
   * renew and delete need a kubeconfig.
   */
  gateway?: GatewayConfig;
  /**
   * A call to a sandbox the operator suspended for idleness resumes it and
   * waits this long for it to serve (default 60 000 ms); 0: never resume, the
   * call fails with SandboxSuspendedError. Through a gateway, the gateway
   * resumes it (its --resume-timeout).
   */
  resumeTimeoutMs?: number;
}

/** Default bound on resume on use (ClientOptions.resumeTimeoutMs). */
export const DEFAULT_RESUME_TIMEOUT_MS = 60_000;

/** The error of a call that met a sandbox that is not there to answer (any transport). */
function unreachable(err: unknown): boolean {
  if (err instanceof SandboxNotReadyError || err instanceof SandboxNotFoundError) return true;
  // A stale endpoint whose port now belongs to another sandbox's agent.
  if (err instanceof UnauthorizedError) return true;
  const code = (err as { code?: string }).code;
  return code === "ECONNREFUSED" || code === "ECONNRESET" || code === "EPIPE";
}

const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** The gateway to use: given explicitly, else from the environment unless a kubeconfig was given. */
function gatewayOf(o: ClientOptions): GatewayConfig | undefined {
  return o.gateway ?? (o.kubeconfig ? undefined : gatewayFromEnv());
}

export interface CreateOptions extends ClientOptions {
  /** Name; default: generated ("sbx-xxxxx"). */
  name?: string;
  labels?: Record<string, string>;
  /** Wait until Ready and the agent answers (default true); a number is the timeout in ms. */
  waitUntilReady?: boolean | number;
}

/** Copies of plain KubeConfigs callers handed over, that keep their connections (below). */
const reusing = new WeakMap<k8s.KubeConfig, { text: string; copy: k8s.KubeConfig }>();

/**
 * The client configuration, keeping connections to the apiserver alive:
 * client-node 2.0 opens a new TLS connection for every request, a handshake
 * on the path of every create and claim (src/kube/config.ts). A plain
 * KubeConfig the caller hands over is used through a copy that reuses them
 * (made again if the caller changes it); a subclass is used as given, since
 * it may authenticate its own way.
 */
function kubeConfigOf(o: ClientOptions): k8s.KubeConfig {
  const given = o.kubeconfig;
  if (given instanceof k8s.KubeConfig) {
    if (given.constructor !== k8s.KubeConfig) return given;
    const text = given.exportConfig();
    const hit = reusing.get(given);
    if (hit?.text === text) return hit.copy;
    const copy = reusingCopy(given);
    reusing.set(given, { text, copy });
    return copy;
  }
  const kc = new ReusingKubeConfig();
  if (given) kc.loadFromFile(given);
  else kc.loadFromDefault();
  return kc;
}

function namespaceOf(kc: k8s.KubeConfig, o: ClientOptions): string {
  return o.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default";
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

/** A background process in a sandbox: it outlives the client that started it. */
export class BackgroundProcess {
  constructor(
    private readonly agent: AgentClient,
    readonly info: ProcessInfo,
  ) {}

  get id(): string {
    return this.info.id;
  }

  /** Waits for the exit (polling in 5-minute long polls) and returns the final state. */
  async wait(timeoutMs = Number.POSITIVE_INFINITY): Promise<ProcessInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.min(300_000, deadline - Date.now());
      const p = await this.agent.waitProcess(this.id, Math.max(0, left));
      if (!p.running) return p;
      if (Date.now() >= deadline) throw new TimeoutError(`process ${this.id} still running`);
    }
  }

  /** What the ring buffers hold (the last outputLimitBytes of each stream). */
  async output(): Promise<{ stdout: string; stderr: string; running: boolean }> {
    const o = await this.agent.processOutput(this.id);
    return {
      stdout: Buffer.from(o.stdout.data, "base64").toString("utf8"),
      stderr: Buffer.from(o.stderr.data, "base64").toString("utf8"),
      running: o.running,
    };
  }

  write(data: Body, eof = false): Promise<void> {
    return this.agent.writeProcessStdin(this.id, data, eof);
  }

  signal(signal: string): Promise<void> {
    return this.agent.signalProcess(this.id, signal);
  }

  kill(): Promise<void> {
    return this.agent.killProcess(this.id);
  }
}

export class Sandbox {
  private plane: DataPlane | undefined;

  private constructor(
    private readonly kubeConfig: k8s.KubeConfig | undefined,
    private readonly options: ClientOptions,
    private resource: SandboxResource,
    private claimInfo?: ClaimInfo,
  ) {}

  /**
   * The claim this sandbox is bound to (Sandbox.claim: name, uid, source,
   * coldReason, pool, readyMilliseconds; otherwise what its labels say).
   * Deleting the sandbox deletes the claim.
   */
  get claim(): ClaimInfo | undefined {
    if (this.claimInfo) return this.claimInfo;
    const labels = this.resource.metadata.labels ?? {};
    const name = labels[Labels.claim];
    const uid = labels[Labels.claimUid];
    return name && uid ? { name, uid } : undefined;
  }

  get name(): string {
    return this.resource.metadata.name!;
  }

  get namespace(): string {
    return this.resource.metadata.namespace!;
  }

  get createdAt(): string | undefined {
    const t = this.resource.metadata.creationTimestamp as unknown;
    return t instanceof Date ? t.toISOString() : (t as string | undefined);
  }

  /** The resource as last read. */
  get status(): SandboxResource["status"] {
    return this.resource.status;
  }

  private get kc(): k8s.KubeConfig {
    if (!this.kubeConfig)
      throw new SandboxError(
        "this needs a kubeconfig: through the gateway a sandbox offers get, exec, files, processes, logs and fetch",
      );
    return this.kubeConfig;
  }

  private static api(kc: k8s.KubeConfig) {
    return kc.makeApiClient(k8s.CustomObjectsApi);
  }

  /** Creates a Sandbox; the spec is validated here first, with the field's name in the error. */
  static async create(spec: SandboxSpecInput, options: CreateOptions = {}): Promise<Sandbox> {
    const parsed = SandboxSpecSchema.safeParse(spec);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new SandboxError(
        `invalid sandbox spec: spec.${first?.path.join(".")}: ${first?.message}`,
      );
    }
    const kc = kubeConfigOf(options);
    const namespace = namespaceOf(kc, options);
    const created = (await Sandbox.api(kc).createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SANDBOX_PLURAL,
      body: {
        apiVersion: API_VERSION,
        kind: SANDBOX_KIND,
        metadata: {
          ...(options.name ? { name: options.name } : { generateName: "sbx-" }),
          ...(options.labels ? { labels: options.labels } : {}),
        },
        spec,
      },
    })) as SandboxResource;
    const sandbox = new Sandbox(kc, { ...options, namespace }, created);
    const wait = options.waitUntilReady ?? true;
    if (wait !== false) {
      try {
        // From the create's version: every later change arrives, nothing is read twice.
        await sandbox.untilServing(
          typeof wait === "number" ? wait : DEFAULT_READY_TIMEOUT_MS,
          created.metadata.resourceVersion,
        );
      } catch (err) {
        sandbox.close();
        throw err;
      }
    }
    return sandbox;
  }

  /**
   * A sandbox from a SandboxTemplate through a SandboxClaim: a ready pooled
   * sandbox when a warm pool has one (with this call's egress policy, live),
   * else a cold one. Resolves once the claim is Ready (its policy in force)
   * and the agent answers, with a handle built from what the watches
   * delivered. A claim that fails, expires, names a missing template or times
   * out is deleted before the error (ClaimFailedError, TimeoutError) is
   * thrown: nothing is left behind. Deleting the handle deletes the claim,
   * which deletes its sandbox.
   */
  static async claim(template: string, options: ClaimOptions = {}): Promise<Sandbox> {
    const body = claimBody(template, options);
    const kc = kubeConfigOf(options);
    const namespace = namespaceOf(kc, options);
    const api = Sandbox.api(kc);
    const ref = { group: GROUP, version: VERSION, namespace };
    let claim = (await api.createNamespacedCustomObject({
      ...ref,
      plural: CLAIM_PLURAL,
      body,
    })) as SandboxClaim;
    const name = claim.metadata.name!;
    const uid = claim.metadata.uid!;
    const what = `claim ${namespace}/${name}`;
    const opts: ClientOptions = { ...options, namespace };
    const wait = options.waitUntilReady ?? true;
    const timeoutMs = typeof wait === "number" ? wait : DEFAULT_READY_TIMEOUT_MS;

    let claimGone = false;
    const sandboxes = new Map<string, SandboxResource>();
    let handle: Sandbox | undefined;
    /** The agent's first answer, asked as soon as the bound sandbox is Ready, while the claim finishes. */
    let early: Promise<boolean> | undefined;
    const sources: Source[] = [
      watchSource<SandboxClaim>({
        kubeConfig: kc,
        ...ref,
        plural: CLAIM_PLURAL,
        fieldSelector: `metadata.name=${name}`,
        resourceVersion: claim.metadata.resourceVersion,
        onChange: (type, obj) => {
          if (type === "DELETED") claimGone = true;
          else claim = obj;
        },
      }),
      // Warm or cold, the claim's sandbox carries its UID: seen the moment it is bound.
      watchSource<SandboxResource>({
        kubeConfig: kc,
        ...ref,
        plural: SANDBOX_PLURAL,
        labelSelector: `${Labels.claimUid}=${uid}`,
        onChange: (type, obj) => {
          if (type === "DELETED") sandboxes.delete(obj.metadata.name!);
          else sandboxes.set(obj.metadata.name!, obj);
        },
      }),
    ];
    const check = async (): Promise<Check<Sandbox>> => {
      if (claimGone) throw new ClaimFailedError(name, "Deleted", `${what} was deleted`);
      const verdict = claimVerdict(claim);
      if (verdict.state === "failed") {
        // The controller may not have seen a template made a moment ago: it re-judges the claim when it does.
        if (verdict.recheck === "template" && (await templateExists(kc, namespace, template)))
          return undefined;
        throw new ClaimFailedError(name, verdict.reason, verdict.message);
      }
      if (verdict.state === "pending") return undefined;
      const resource = sandboxes.get(verdict.sandboxName);
      if (!resource) return undefined;
      if (handle?.name !== verdict.sandboxName) {
        handle?.close();
        handle = new Sandbox(kc, opts, resource, claimInfoOf(claim));
        early = undefined;
      }
      handle.resource = resource;
      handle.claimInfo = claimInfoOf(claim);
      if (wait === false) return { value: handle };
      if (verdict.state === "bound") {
        // Connect and ask the agent while the claim's policy is applied: the
        // first exec then finds the connection open (a warm sandbox's agent
        // has been up for a while; nothing about it changes at claim time).
        if (!early && isReady(resource)) early = handle.agentAnswers().catch(() => false);
        return undefined;
      }
      const answers = await (early ?? handle.agentAnswers());
      early = undefined;
      return answers ? { value: handle } : { retryAfterMs: AGENT_RETRY_MS };
    };
    try {
      return await until({
        sources,
        check,
        timeoutMs,
        onTimeout: () => {
          const v = claimVerdict(claim);
          const detail =
            v.state === "pending"
              ? (v.message ?? "no sandbox bound yet")
              : v.state === "bound"
                ? `sandbox ${v.sandboxName} is not ready yet`
                : v.state === "ready"
                  ? `the agent of sandbox ${v.sandboxName} does not answer`
                  : v.message;
          return new TimeoutError(`${what} not ready after ${timeoutMs} ms: ${detail}`);
        },
      });
    } catch (err) {
      handle?.close();
      // The caller has no handle to clean up with: the claim (and so its sandbox) goes now.
      await api
        .deleteNamespacedCustomObject({
          ...ref,
          plural: CLAIM_PLURAL,
          name,
          propagationPolicy: "Background",
          body: { preconditions: { uid } },
        })
        .catch(() => {});
      throw err;
    }
  }

  static async get(name: string, options: ClientOptions = {}): Promise<Sandbox> {
    const gateway = gatewayOf(options);
    if (gateway) {
      const namespace = options.namespace ?? process.env[NAMESPACE_ENV] ?? "default";
      const r = (await gatewayGetSandbox(gateway, namespace, name)) as SandboxResource;
      return new Sandbox(undefined, { ...options, namespace, gateway }, r);
    }
    const kc = kubeConfigOf(options);
    const namespace = namespaceOf(kc, options);
    try {
      const r = (await Sandbox.api(kc).getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: SANDBOX_PLURAL,
        name,
      })) as SandboxResource;
      return new Sandbox(kc, { ...options, namespace }, r);
    } catch (err) {
      if (isNotFound(err)) throw new SandboxNotFoundError(`sandbox ${namespace}/${name} not found`);
      throw err;
    }
  }

  static async list(options: ClientOptions & { labelSelector?: string } = {}): Promise<Sandbox[]> {
    const kc = kubeConfigOf(options);
    const namespace = namespaceOf(kc, options);
    const list = (await Sandbox.api(kc).listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: SANDBOX_PLURAL,
      ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
    })) as { items: SandboxResource[] };
    return list.items.map((r) => new Sandbox(kc, { ...options, namespace }, r));
  }

  /** Re-reads the resource. */
  async refresh(): Promise<SandboxResource> {
    const fresh = await Sandbox.get(this.name, this.options);
    this.resource = fresh.resource;
    return this.resource;
  }

  /** Waits until the Sandbox is Ready and its agent answers. */
  async waitUntilReady({
    timeoutMs = DEFAULT_READY_TIMEOUT_MS,
  }: {
    timeoutMs?: number;
  } = {}): Promise<void> {
    return this.untilServing(timeoutMs);
  }

  /**
   * Follows the resource (a watch; through a gateway, reads) until it is
   * Ready and the agent answers. `since`: the version this handle holds is
   * fresh (a create's answer), so the watch starts there; otherwise the
   * current state is read first.
   */
  private async untilServing(timeoutMs: number, since?: string): Promise<void> {
    let gone = false;
    const source: Source = this.kubeConfig
      ? watchSource<SandboxResource>({
          kubeConfig: this.kubeConfig,
          group: GROUP,
          version: VERSION,
          plural: SANDBOX_PLURAL,
          namespace: this.namespace,
          fieldSelector: `metadata.name=${this.name}`,
          resourceVersion: since,
          known: [this.resource],
          onChange: (type, obj) => {
            if (type === "DELETED") gone = true;
            else this.resource = obj;
          },
        })
      : pollSource(async () => {
          try {
            await this.refresh();
          } catch (err) {
            if (!(err instanceof SandboxNotFoundError)) throw err;
            gone = true;
          }
        }, GATEWAY_POLL_MS);
    const what = `sandbox ${this.namespace}/${this.name}`;
    await until<void>({
      sources: [source],
      check: async () => {
        if (gone) throw new SandboxNotFoundError(`${what} was deleted`);
        const r = this.resource;
        const phase = r.status?.phase;
        if (phase && FINISHED_PHASES.has(phase))
          throw new SandboxNotReadyError(
            `${what} is ${phase}${r.status?.message ? `: ${r.status.message}` : ""}`,
          );
        if (!isReady(r)) return undefined;
        return (await this.agentAnswers())
          ? { value: undefined }
          : { retryAfterMs: AGENT_RETRY_MS };
      },
      timeoutMs,
      onTimeout: () => {
        const ready = readyCondition(this.resource);
        return new TimeoutError(
          `${what} not ready after ${timeoutMs} ms${ready?.message ? `: ${ready.message}` : ""}`,
        );
      },
    });
  }

  /** Whether the agent answers its health check (false while it cannot be reached yet). */
  private async agentAnswers(): Promise<boolean> {
    try {
      return await (await this.agent()).healthy();
    } catch (err) {
      if (err instanceof SandboxNotReadyError) return false;
      throw err;
    }
  }

  private async dataPlane(): Promise<DataPlane> {
    const gateway = this.options.gateway ?? gatewayOf(this.options);
    if (!this.plane && gateway) this.plane = gatewayDataPlane(gateway, this.namespace, this.name);
    if (!this.plane)
      this.plane = await connect(this.resource, {
        docker: this.options.docker,
        kubeConfig: this.kc,
      });
    return this.plane;
  }

  private async agent(): Promise<AgentClient> {
    return (await this.dataPlane()).agent();
  }

  /**
   * Resume on use (docs/idle.md). Direct transports only: through a gateway
   * the gateway does it. Resolves true when the sandbox was asleep and now
   * serves; false when there was nothing to do. `fresh` reads the resource
   * first (after a call failed); otherwise the last read decides, so a
   * sandbox in use costs no API read per call.
   */
  private async wakeIfAsleep(fresh: boolean): Promise<boolean> {
    if (!this.kubeConfig || this.options.gateway) return false;
    const r = fresh ? await this.refresh() : this.resource;
    if (!asleep(r)) return false;
    const timeoutMs = this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS;
    const what = `sandbox ${this.namespace}/${this.name}`;
    if (timeoutMs <= 0)
      throw new SandboxSuspendedError(
        "RESUME_DISABLED",
        `${what} is suspended (resumeTimeoutMs is 0)`,
      );
    const deadline = Date.now() + timeoutMs;
    try {
      await wake({
        read: () => this.refresh(),
        resume: (s) => this.patch(resumePatch(s.metadata.uid)),
        timeoutMs,
      });
    } catch (err) {
      if (err instanceof WakeRefusedError) throw new SandboxSuspendedError(err.code, err.message);
      if (err instanceof WakeTimeoutError) throw new TimeoutError(err.message);
      throw err;
    }
    // The endpoints changed with the new workload; its agent must answer before the call.
    this.close();
    await this.waitUntilReady({ timeoutMs: Math.max(1, deadline - Date.now()) });
    return true;
  }

  /**
   * A call through the agent: resumes a sandbox found asleep (before, from
   * the last read; or after the call failed to reach it, from a fresh read)
   * and then makes it (again: it never reached the sandbox).
   */
  private async use<T>(op: (agent: AgentClient) => Promise<T>): Promise<T> {
    await this.wakeIfAsleep(false);
    try {
      return await op(await this.agent());
    } catch (err) {
      if (!unreachable(err) || !(await this.recover(err).catch(() => false))) throw err;
      return op(await this.agent());
    }
  }

  /**
   * After a call failed to reach the sandbox: whether calling again can work
   * (see afterUnreachable). A sandbox resumed by someone else serves on new
   * endpoints (docker: new published ports), which the data plane made for
   * the old workload does not know. A sandbox that serves is called again
   * only when the call surely never reached it: a reset connection may have
   * carried it to a workload that is still there.
   */
  private async recover(err: unknown): Promise<boolean> {
    if (!this.kubeConfig || this.options.gateway) return false;
    const next = afterUnreachable(await this.refresh());
    if (next === "wake") return this.wakeIfAsleep(false);
    const code = (err as { code?: string }).code;
    if (code === "ECONNRESET" || code === "EPIPE") return false;
    switch (next) {
      case "reconnect":
        this.close();
        return true;
      case "wait":
        this.close();
        await this.waitUntilReady({
          timeoutMs: this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS,
        });
        return true;
      case "fail":
        return false;
    }
  }

  private async patch(body: object): Promise<void> {
    this.resource = (await Sandbox.api(this.kc).patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: SANDBOX_PLURAL,
        name: this.name,
        body,
      },
      mergePatch,
    )) as SandboxResource;
  }

  /**
   * Suspends the sandbox (spec.suspended: true): its workload stops and its
   * compute is released; the workspace, name and credential stay. A sandbox
   * suspended this way stays suspended until resume() (calls fail with
   * SandboxSuspendedError); one the operator suspended for idleness resumes
   * on the next call.
   */
  async suspend(): Promise<void> {
    this.close();
    await this.patch({
      metadata: { uid: this.resource.metadata.uid, annotations: { [IDLE_MARK]: null } },
      spec: { suspended: true },
    });
  }

  /** Resumes a suspended sandbox and (by default) waits until it is Ready and its agent answers. */
  async resume({
    wait = true,
    timeoutMs,
  }: {
    wait?: boolean;
    timeoutMs?: number;
  } = {}): Promise<void> {
    this.close();
    await this.patch(resumePatch(this.resource.metadata.uid));
    if (wait)
      await this.waitUntilReady({
        timeoutMs: timeoutMs ?? this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS,
      });
  }

  /** Runs a command to completion. A string runs through `sh -c`. Exit codes are results. */
  async exec(command: string | string[], options: ExecOptions = {}): Promise<ExecResult> {
    return this.use((a) => a.exec(argvOf(command), options));
  }

  /** Runs a command with streaming output, stdin, resize and signals. */
  async execStream(command: string | string[], options: ExecOptions = {}): Promise<ExecHandle> {
    await this.wakeIfAsleep(false);
    return (await this.agent()).execStream(argvOf(command), options);
  }

  /** Starts a background process that outlives this client. */
  async spawn(
    command: string | string[],
    options: Omit<ExecSpec, "argv"> = {},
  ): Promise<BackgroundProcess> {
    return this.use(
      async (agent) =>
        new BackgroundProcess(agent, await agent.startProcess(argvOf(command), options)),
    );
  }

  /** A background process started earlier (by this client or another), by its ID. */
  async process(id: string): Promise<BackgroundProcess> {
    return this.use(async (agent) => new BackgroundProcess(agent, await agent.getProcess(id)));
  }

  async processes(): Promise<ProcessInfo[]> {
    return this.use((a) => a.listProcesses());
  }

  /** The sandbox's file system, as the workload's user sees it. */
  readonly files = {
    read: (path: string, range?: ReadOptions): Promise<Buffer> =>
      this.use((a) => a.readFile(path, range)),
    readText: (path: string): Promise<string> => this.use((a) => a.readText(path)),
    readStream: (path: string, range?: ReadOptions): Promise<Readable> =>
      this.use((a) => a.readStream(path, range)),
    write: (path: string, data: Body, options?: WriteOptions) =>
      this.use((a) => a.writeFile(path, data, options)),
    list: (path: string): Promise<FileInfo[]> => this.use((a) => a.list(path)),
    stat: (path: string): Promise<FileInfo> => this.use((a) => a.stat(path)),
    exists: (path: string): Promise<boolean> => this.use((a) => a.exists(path)),
    mkdir: (path: string, options?: { parents?: boolean; mode?: string }) =>
      this.use((a) => a.mkdir(path, options)),
    move: (from: string, to: string, options?: { overwrite?: boolean }) =>
      this.use((a) => a.move(from, to, options)),
    remove: (path: string, options?: { recursive?: boolean }) =>
      this.use((a) => a.remove(path, options)),
    /** Extracts a tar stream into dir. */
    uploadTar: (dir: string, tar: Body) => this.use((a) => a.uploadTar(dir, tar)),
    /** A tar stream of path. */
    downloadTar: (path: string): Promise<Readable> => this.use((a) => a.downloadTar(path)),
  };

  /** The workload's own output, from the runtime (follow, since, tail). */
  async logs(options: LogOptions = {}): Promise<LogStreams> {
    return (await this.dataPlane()).logs(options);
  }

  /** After a resume: wait until the workload's server accepts connections on port again. */
  private async portAnswers(port: number): Promise<void> {
    const deadline = Date.now() + (this.options.resumeTimeoutMs ?? DEFAULT_RESUME_TIMEOUT_MS);
    for (;;) {
      const where = await (await this.dataPlane()).port(port);
      if (await answers(where.host, where.port)) return;
      if (Date.now() > deadline)
        throw new TimeoutError(
          `sandbox ${this.namespace}/${this.name} resumed but nothing answers on port ${port}`,
        );
      await sleep(50);
    }
  }

  /** A TCP connection to a declared port of the sandbox. */
  async connect(port: number): Promise<Socket> {
    await this.wakeIfAsleep(false);
    const where = await (await this.dataPlane()).port(port);
    const socket = netConnect(where.port, where.host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return socket;
  }

  /** An HTTP request to a declared port of the sandbox. */
  async fetch(port: number, path = "/", init?: RequestInit): Promise<Response> {
    const plane = await this.dataPlane();
    if ("portUrl" in plane) {
      const { url, headers } = (plane as GatewayDataPlane).portUrl(port, path);
      const merged = new Headers(init?.headers);
      for (const [k, v] of Object.entries(headers)) merged.set(k, v);
      return fetch(url, { ...init, headers: merged });
    }
    const direct = async () => {
      const where = await (await this.dataPlane()).port(port);
      const host = where.host.includes(":") ? `[${where.host}]` : where.host;
      return fetch(`http://${host}:${where.port}${path.startsWith("/") ? path : `/${path}`}`, init);
    };
    if (await this.wakeIfAsleep(false)) await this.portAnswers(port);
    try {
      return await direct();
    } catch (err) {
      // fetch wraps the socket's error: a refused connection is in its cause.
      const cause = (err as { cause?: unknown }).cause ?? err;
      if (!unreachable(cause) || !(await this.wakeIfAsleep(true).catch(() => false))) throw err;
      await this.portAnswers(port);
      return direct();
    }
  }

  /** Extends the lifetime: the sandbox now expires ttlSeconds from now. */
  async renew(ttlSeconds: number): Promise<Date> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)
      throw new SandboxError("renew: ttlSeconds must be a positive integer");
    const expiresAt = new Date(Math.ceil((Date.now() + ttlSeconds * 1000) / 1000) * 1000);
    const iso = expiresAt.toISOString().replace(".000Z", "Z");
    this.resource = (await Sandbox.api(this.kc).patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: SANDBOX_PLURAL,
        name: this.name,
        body: { spec: { lifetime: { ttlSeconds: null, expiresAt: iso } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    )) as SandboxResource;
    return expiresAt;
  }

  /**
   * Deletes the Sandbox (the operator removes what it runs on). A claimed
   * sandbox goes with its claim: the claim is deleted (its UID checked), and
   * the claim's deletion takes the sandbox; the claim is not left behind as
   * Failed, and "create/delete sandboxclaims" is all the caller needs.
   */
  async delete(): Promise<void> {
    this.close();
    const claim = this.claim;
    if (claim) {
      try {
        await Sandbox.api(this.kc).deleteNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: this.namespace,
          plural: CLAIM_PLURAL,
          name: claim.name,
          propagationPolicy: "Background",
          body: { preconditions: { uid: claim.uid } },
        });
        return;
      } catch (err) {
        // Gone already, or a new claim of that name (409: not ours): the sandbox itself goes.
        if (!isNotFound(err) && !(err instanceof k8s.ApiException && err.code === 409)) throw err;
      }
    }
    try {
      await Sandbox.api(this.kc).deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: SANDBOX_PLURAL,
        name: this.name,
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Releases connections (the sandbox keeps running). */
  close(): void {
    this.plane?.close();
    this.plane = undefined;
  }
}

/** Default bound on waiting for Ready (create, claim, waitUntilReady). */
export const DEFAULT_READY_TIMEOUT_MS = 120_000;
/** Ready but the agent does not answer yet: ask again this soon (it starts with the workload). */
const AGENT_RETRY_MS = 20;
/** Through a gateway there is no watch: the resource is read this often while waiting. */
const GATEWAY_POLL_MS = 250;
const FINISHED_PHASES = new Set(["Succeeded", "Failed", "Expired", "Terminating"]);

function readyCondition(r: SandboxResource) {
  return r.status?.conditions?.find((c) => c.type === ConditionType.Ready);
}

function isReady(r: SandboxResource): boolean {
  return readyCondition(r)?.status === "True";
}

/** Whether the template exists as far as the caller can tell: any error (404; a caller who may not read templates) says no. */
async function templateExists(kc: k8s.KubeConfig, namespace: string, name: string) {
  try {
    await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: TEMPLATE_PLURAL,
      name,
    });
    return true;
  } catch {
    return false;
  }
}

/** The operator's idle mark (src/api/idle.ts), removed by a person's suspension. */
const IDLE_MARK = IdleMark.annotation;

function argvOf(command: string | string[]): string[] {
  return typeof command === "string" ? ["sh", "-c", command] : command;
}
