// How the controller reads a sandbox agent's activity clock: the same
// transports the SDK uses, opened for one request and closed. Docker: the
// agent's port published on the host's loopback and its credential from the
// container label (the controller holds the Docker API anyway). Pod: a
// pods/portforward to the agent on the Pod's loopback and the credential
// from the sandbox's agent Secret (RBAC: create pods/portforward, get
// secrets). Once per idle period per sandbox in use (docs/idle.md).
import type * as k8s from "@kubernetes/client-node";
import type Docker from "dockerode";
import { AgentClient } from "../dataplane/client.js";
import type { Activity } from "../dataplane/protocol.js";

export interface ActivityRef {
  namespace: string;
  name: string;
  uid?: string;
}

export async function dockerActivity(docker: Docker, ref: ActivityRef): Promise<Activity> {
  const { dockerAgentEndpoint } = await import("../dataplane/docker.js");
  const client = new AgentClient(await dockerAgentEndpoint(docker, ref), { maxSockets: 1 });
  try {
    return await client.activity();
  } finally {
    client.close();
  }
}

export async function podActivity(kc: k8s.KubeConfig, ref: ActivityRef): Promise<Activity> {
  const { podAgentEndpoint } = await import("../dataplane/pod.js");
  const { endpoint, forwarder } = await podAgentEndpoint(kc, ref);
  const client = new AgentClient(endpoint, { maxSockets: 1 });
  try {
    return await client.activity();
  } finally {
    client.close();
    forwarder.close();
  }
}
