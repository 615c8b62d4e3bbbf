// The YAML parser, loaded on demand by from-text.ts.
export { parse as parseYaml } from "yaml";
