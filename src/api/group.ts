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
