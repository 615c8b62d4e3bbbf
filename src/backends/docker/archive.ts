// Tar archives for the Engine's PUT /containers/{id}/archive: the only way to
// place a file in a container (or a directory owned by the right user in a
// freshly created volume) without a shell or a bind mount from the host.
import { pack } from "tar-stream";

export interface ArchiveEntry {
  /** Path relative to the extraction directory. */
  name: string;
  /** File contents; absent for a directory. */
  content?: string | Buffer;
  mode: number;
  uid: number;
  gid: number;
}

export async function tarOf(entries: ArchiveEntry[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on("data", (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on("end", resolve);
    archive.on("error", reject);
  });
  for (const e of entries) {
    const header = { name: e.name, mode: e.mode, uid: e.uid, gid: e.gid, mtime: new Date(0) };
    if (e.content === undefined) archive.entry({ ...header, type: "directory" });
    else archive.entry({ ...header, type: "file" }, e.content);
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}
