// Images on the node without a registry: the pause image built by
// hack/k8s-bins/node/build.sh, and images from the local Docker engine (`make
// images`) exported with `docker save` and imported into containerd's k8s.io
// namespace. An import is skipped when containerd's root already holds the same
// Docker image ID (the root is kept between runs; see index.ts).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ContainerdPaths, ctr } from "./containerd.js";
import { trySh } from "./host.js";

/** Kept in step with hack/k8s-bins/node/build.sh. */
export const PAUSE_IMAGE = "localhost/sandbox-operator/pause:1";

/**
 * Tag a `:latest` image is also imported under: the kubelet always pulls
 * `:latest` (imagePullPolicy defaults to Always), and nothing can be pulled here.
 */
export const LOCAL_TAG = "local";

export function localTagOf(image: string): string {
  return image.replace(/:latest$/, `:${LOCAL_TAG}`);
}

function normalized(image: string): string {
  const withTag = /:[^/]+$/.test(image) ? image : `${image}:latest`;
  const first = withTag.split("/")[0]!;
  if (
    withTag.includes("/") &&
    (first.includes(".") || first.includes(":") || first === "localhost")
  )
    return withTag;
  return withTag.includes("/") ? `docker.io/${withTag}` : `docker.io/library/${withTag}`;
}

export function importPause(p: ContainerdPaths, binDir: string): void {
  if (imageList(p).includes(PAUSE_IMAGE)) return;
  ctr(p, ["images", "import", join(binDir, "pause.tar")]);
}

/** Import Docker images (by reference) into the node; returns the ones imported now. */
export function importDockerImages(p: ContainerdPaths, images: string[]): string[] {
  const marks = join(p.root, "sandbox-operator-imported");
  mkdirSync(marks, { recursive: true });
  const imported: string[] = [];
  for (const image of images) {
    const id = trySh("docker", ["image", "inspect", "-f", "{{.Id}}", image])?.trim();
    if (!id)
      throw new Error(
        `image ${image} is not in the local Docker engine: run \`make images\` first`,
      );
    const mark = join(marks, normalized(image).replaceAll("/", "_"));
    const present = imageList(p).includes(normalized(image));
    if (present && existsSync(mark) && readFileSync(mark, "utf8") === id) continue;
    const tar = join(p.root, "import.tar");
    try {
      execFileSync("docker", ["save", "-o", tar, image], { stdio: ["ignore", "ignore", "pipe"] });
      ctr(p, ["images", "import", tar]);
    } finally {
      rmSync(tar, { force: true });
    }
    if (image.endsWith(":latest") || !/:[^/]+$/.test(image)) {
      ctr(p, [
        "images",
        "tag",
        "--force",
        normalized(image),
        normalized(localTagOf(normalized(image))),
      ]);
    }
    writeFileSync(mark, id);
    imported.push(image);
  }
  return imported;
}

export function imageList(p: ContainerdPaths): string[] {
  return ctr(p, ["images", "ls", "-q"]).split("\n").filter(Boolean);
}
