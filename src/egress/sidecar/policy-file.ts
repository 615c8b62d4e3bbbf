// The policy as a mounted file that may change while the sandbox runs. The pod
// backend mounts it from a ConfigMap, which the kubelet updates by swapping a
// symlink (..data) in the directory: the file's inode changes and a watch on the
// file itself would go silent. So the directory is watched, and a periodic stat
// catches whatever fs.watch misses (network filesystems, overlay quirks).
//
// The file holds the `network.egress` object as YAML or JSON. A change that
// cannot be read or does not compile makes the sidecar deny everything (fail
// closed) and report not-ready until a valid policy arrives.
import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { type CompiledPolicy, DENY_ALL, policyFromText } from "../policy/index.js";

export interface PolicySource {
  current(): CompiledPolicy;
  /** Undefined while the policy in force is the one in the file; otherwise why not. */
  problem(): string | undefined;
  close(): void;
}

/** A fixed policy (docker backend passing it inline, tests). */
export function staticPolicy(policy: CompiledPolicy): PolicySource {
  return { current: () => policy, problem: () => undefined, close: () => {} };
}

export interface PolicyFileOptions {
  logger: Logger;
  /** Period of the stat fallback. */
  pollIntervalMs?: number;
  onChange?: (policy: CompiledPolicy) => void;
}

/** Load the policy file (throws if the first load fails) and keep following it. */
export async function watchPolicyFile(
  path: string,
  opts: PolicyFileOptions,
): Promise<PolicySource> {
  const log = opts.logger.child({ policyFile: path });
  let lastStat = await statKey(path);
  let lastText = await readFile(path, "utf8");
  let policy = await policyFromText(lastText);
  let problem: string | undefined;
  let reloading: Promise<void> | undefined;
  let again = false;

  const reload = async (): Promise<void> => {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      return fail(`cannot read policy: ${(err as Error).message}`);
    }
    if (text === lastText && problem === undefined) return;
    lastText = text;
    try {
      policy = await policyFromText(text);
      problem = undefined;
      log.info(
        { rules: policy.rules.length, defaultAction: policy.defaultAction },
        "egress policy reloaded",
      );
      opts.onChange?.(policy);
    } catch (err) {
      fail(`invalid policy: ${(err as Error).message}`);
    }
  };
  const fail = (why: string) => {
    policy = DENY_ALL;
    problem = why;
    log.error({ err: why }, "egress policy unusable; denying all egress until it is fixed");
    opts.onChange?.(policy);
  };
  // Serialize reloads; a trigger during a reload schedules exactly one more.
  const trigger = () => {
    if (reloading) {
      again = true;
      return;
    }
    reloading = reload().finally(() => {
      reloading = undefined;
      if (again) {
        again = false;
        trigger();
      }
    });
  };

  let watcher: FSWatcher | undefined;
  try {
    const name = basename(path);
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      // ConfigMap updates rename "..data"; a plain file edit names the file.
      if (file === null || file === name || file.startsWith("..")) trigger();
    });
    watcher.on("error", (err) =>
      log.warn({ err: err.message }, "policy watch failed; polling only"),
    );
  } catch (err) {
    log.warn({ err: (err as Error).message }, "cannot watch policy directory; polling only");
  }
  const poll = setInterval(async () => {
    const key = await statKey(path).catch(() => "missing");
    if (key !== lastStat) {
      lastStat = key;
      trigger();
    }
  }, opts.pollIntervalMs ?? 2000);
  poll.unref();

  return {
    current: () => policy,
    problem: () => problem,
    close: () => {
      clearInterval(poll);
      watcher?.close();
    },
  };
}

/** Identity of the file's current content as stat sees it (stat follows the symlink). */
async function statKey(path: string): Promise<string> {
  const s = await stat(path);
  return `${s.ino}:${s.mtimeMs}:${s.size}`;
}
