// A TCP proxy in front of the apiserver that can go silent: connections stay
// open but no byte passes, as with a network partition or a hung server. TLS
// passes through untouched (the serving certificate is for 127.0.0.1 either way).
import { createServer, Socket } from "node:net";
import * as k8s from "@kubernetes/client-node";

export interface BlackholeProxy {
  /** A kubeconfig like `kc` but talking through the proxy. */
  kubeConfig: k8s.KubeConfig;
  /** Stop passing bytes, in both directions, on existing and new connections. */
  blackhole(): void;
  close(): Promise<void>;
}

export async function blackholeProxy(kc: k8s.KubeConfig): Promise<BlackholeProxy> {
  const target = new URL(kc.getCurrentCluster()!.server);
  const sockets = new Set<Socket>();
  let silent = false;
  const server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on("data", (chunk) => silent || upstream.write(chunk));
    upstream.on("data", (chunk) => silent || client.write(chunk));
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  const proxied = new k8s.KubeConfig();
  const cluster = kc.getCurrentCluster()!;
  proxied.loadFromOptions({
    clusters: [{ ...cluster, server: `https://127.0.0.1:${port}` }],
    users: [kc.getCurrentUser()!],
    contexts: [{ name: "proxied", cluster: cluster.name, user: kc.getCurrentUser()!.name }],
    currentContext: "proxied",
  });

  return {
    kubeConfig: proxied,
    blackhole: () => {
      silent = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
