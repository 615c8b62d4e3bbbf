// Egress control shared by both backends: the policy (pure), the lockdown
// (`sandbox-operator egress-init`) and the sidecar (`sandbox-operator egress`).
export * from "./contract.js";
export * from "./firewall/index.js";
export * from "./policy/index.js";
export * from "./sidecar/index.js";
