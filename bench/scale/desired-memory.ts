// Heap held by the pod backend's memoised desired objects for N sandboxes:
//   node --expose-gc --import tsx bench/scale/desired-memory.ts
import { SandboxSpecSchema } from "../../src/api/sandbox-spec.js";
import { DesiredObjects } from "../../src/backends/pod/desired.js";

const N = 10_000;
const gc = (globalThis as { gc?: () => void }).gc!;
const specs = Array.from({ length: N }, () =>
  SandboxSpecSchema.parse({
    image: "busybox",
    command: ["sleep", "infinity"],
    resources: { cpu: "100m", memory: "64Mi" },
    lifetime: { ttlSeconds: 3600 },
  }),
);
const sandboxes = specs.map((spec, i) => ({
  apiVersion: "sandboxing.dev/v1alpha1",
  kind: "Sandbox",
  metadata: { name: `s${i}`, namespace: "bench", uid: `uid-${i}` },
  spec,
}));
gc();
const before = process.memoryUsage().heapUsed;
const d = new DesiredObjects({ image: "sandbox-operator:dev" });
let bytes = 0;
for (const s of sandboxes) {
  const x = d.of(s as never);
  if (bytes === 0) bytes = JSON.stringify(x).length;
}
gc();
const after = process.memoryUsage().heapUsed;
console.log(
  JSON.stringify({
    N,
    heapMiB: ((after - before) / 2 ** 20).toFixed(1),
    perSandboxKB: ((after - before) / N / 1024).toFixed(2),
    jsonBytesOfOne: bytes,
  }),
);
