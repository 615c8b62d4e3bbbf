// Identity of the Sandbox API. Everything that names the group, version or
// resource imports it from here.

export const GROUP = "sandboxing.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export const SANDBOX_KIND = "Sandbox";
export const SANDBOX_PLURAL = "sandboxes";
export const SANDBOX_SINGULAR = "sandbox";
export const SANDBOX_SHORT_NAMES = ["sbx"];
export const SANDBOX_CATEGORIES = ["sandboxes"];
export const SANDBOX_CRD_NAME = `${SANDBOX_PLURAL}.${GROUP}`;

export const TEMPLATE_KIND = "SandboxTemplate";
export const TEMPLATE_PLURAL = "sandboxtemplates";
export const TEMPLATE_SINGULAR = "sandboxtemplate";
export const TEMPLATE_SHORT_NAMES = ["sbxt"];

export const POOL_KIND = "SandboxWarmPool";
export const POOL_PLURAL = "sandboxwarmpools";
export const POOL_SINGULAR = "sandboxwarmpool";
export const POOL_SHORT_NAMES = ["sbxpool", "swp"];

export const CLAIM_KIND = "SandboxClaim";
export const CLAIM_PLURAL = "sandboxclaims";
export const CLAIM_SINGULAR = "sandboxclaim";
export const CLAIM_SHORT_NAMES = ["sbxc"];

export const SNAPSHOT_KIND = "SandboxSnapshot";
export const SNAPSHOT_PLURAL = "sandboxsnapshots";
export const SNAPSHOT_SINGULAR = "sandboxsnapshot";
export const SNAPSHOT_SHORT_NAMES = ["sbxsnap"];
