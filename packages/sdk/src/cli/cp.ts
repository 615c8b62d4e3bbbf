// `kubectl sandbox cp`: files and directories both ways, as tar streams for
// directories (one request however many files) and plain streams for files.
// Like `docker cp`: copying SRC to an existing directory puts it inside; to a
// new path gives it that name.
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readlink, stat } from "node:fs/promises";
import { basename, dirname, join, posix, relative, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { extract, pack } from "tar-stream";
import { NotFoundError } from "../../../../src/dataplane/errors.js";
import { Sandbox } from "../sandbox.js";
import { parse, UsageError } from "./args.js";

interface Remote {
  name: string;
  path: string;
}

/** NAME:PATH is remote; anything with a slash or dot before the colon, or no colon, is local. */
export function remoteOf(arg: string): Remote | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(.*)$/.exec(arg);
  if (!m) return undefined;
  if (!m[3]) throw new UsageError(`"${arg}": the path after NAME: is empty`);
  return { name: m[1]!, path: m[3]! };
}

export async function cp(args: string[]): Promise<number> {
  const p = parse("cp", args, {});
  if (p.positionals.length !== 2) throw new UsageError("expected SRC and DST");
  const [src, dst] = p.positionals as [string, string];
  const from = remoteOf(src);
  const to = remoteOf(dst);
  if (!!from === !!to) throw new UsageError("exactly one of SRC and DST must be NAME:PATH");
  const sandbox = await Sandbox.get((from ?? to)!.name, p.client);
  try {
    if (to) await upload(sandbox, src, to.path);
    else await download(sandbox, from!.path, dst);
  } finally {
    sandbox.close();
  }
  return 0;
}

async function upload(sandbox: Sandbox, local: string, remote: string): Promise<void> {
  const info = await stat(local).catch(() => {
    throw new UsageError(`${local}: no such file or directory`);
  });
  const existing = await sandbox.files.stat(remote).catch((e) => {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  });
  const target =
    existing?.type === "dir" || remote.endsWith("/")
      ? posix.join(remote, basename(resolve(local)))
      : remote;
  if (info.isFile()) {
    await sandbox.files.write(target, createReadStream(local), { mode: info.mode & 0o777 });
    return;
  }
  // A directory: a tar whose top-level name is the target's basename, extracted in its parent.
  const archive = pack();
  const root = resolve(local);
  const top = posix.basename(target);
  const fill = async () => {
    const walk = async (dir: string): Promise<void> => {
      const rel = relative(root, dir).split(sep).join("/");
      const name = rel ? `${top}/${rel}` : top;
      const st = await lstat(dir);
      archive.entry({ name, type: "directory", mode: st.mode & 0o777 });
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        const entryName = `${name}/${entry.name}`;
        if (entry.isDirectory()) await walk(full);
        else if (entry.isSymbolicLink())
          archive.entry({ name: entryName, type: "symlink", linkname: await readlink(full) });
        else if (entry.isFile()) {
          const fst = await stat(full);
          const sink = archive.entry({ name: entryName, size: fst.size, mode: fst.mode & 0o777 });
          await pipeline(createReadStream(full), sink);
        }
      }
    };
    await walk(root);
    archive.finalize();
  };
  fill().catch((e) => archive.destroy(e));
  await sandbox.files.uploadTar(
    posix.dirname(target),
    archive as unknown as AsyncIterable<Uint8Array>,
  );
}

async function download(sandbox: Sandbox, remote: string, local: string): Promise<void> {
  const info = await sandbox.files.stat(remote);
  const localInfo = await stat(local).catch(() => undefined);
  const target = localInfo?.isDirectory() ? join(local, posix.basename(remote)) : local;
  if (info.type === "file") {
    await pipeline(
      await sandbox.files.readStream(remote),
      createWriteStream(target, { mode: info.mode }),
    );
    return;
  }
  // The archive's names start with the remote basename: map that onto the target.
  const top = posix.basename(remote);
  const ex = extract();
  ex.on("entry", (header, stream, next) => {
    const rest =
      header.name === top || header.name === `${top}/` ? "" : header.name.slice(top.length + 1);
    const out = resolve(target, rest);
    if (out !== resolve(target) && !out.startsWith(resolve(target) + sep)) {
      stream.resume();
      return next(new Error(`archive entry ${header.name} leaves ${target}`));
    }
    const done = (e?: unknown) => (e ? next(e as Error) : next());
    if (header.type === "directory") {
      stream.resume();
      mkdir(out, { recursive: true, mode: header.mode ?? 0o755 }).then(() => done(), done);
    } else if (header.type === "file") {
      mkdir(dirname(out), { recursive: true })
        .then(() => pipeline(stream, createWriteStream(out, { mode: header.mode ?? 0o644 })))
        .then(() => done(), done);
    } else {
      stream.resume();
      done();
    }
  });
  await pipeline(await sandbox.files.downloadTar(remote), ex);
}
