// The cases behind test/vectors/egress-policy.json: policies and the questions
// asked of them. The expected answers are not written here: generate.ts asks
// the TypeScript policy and records what it says, and both the TypeScript tests
// (src/egress/policy/vectors.test.ts) and the Go sidecar's
// (native/egress/internal/policy) check every answer against the file. A case
// added here reaches both once `npm run vectors` regenerates the file.

export type Check =
  | { op: "name"; host: string; port: number }
  | { op: "address"; ip: string; port: number }
  | { op: "anyPort"; host: string }
  | { op: "destination"; name?: string; address: string; port: number }
  /** A TCP connection the lockdown redirected, judged by its original destination. */
  | { op: "redirected"; address: string; port: number };

export interface PolicyCase {
  name: string;
  /** The raw `network.egress` document, as a policy file holds it. */
  policy: unknown;
  /** Reserved ranges for destination checks; the defaults when absent. */
  reserved?: string[];
  checks?: Check[];
}

const names = (hosts: string[], ports: number[]): Check[] =>
  hosts.flatMap((host) => ports.map((port) => ({ op: "name" as const, host, port })));
const anyPort = (hosts: string[]): Check[] => hosts.map((host) => ({ op: "anyPort", host }));
const addresses = (ips: string[], ports: number[]): Check[] =>
  ips.flatMap((ip) => ports.map((port) => ({ op: "address" as const, ip, port })));
const dests = (name: string | undefined, ips: string[], ports: number[]): Check[] =>
  ips.flatMap((address) =>
    ports.map((port) => ({ op: "destination" as const, address, port, ...(name ? { name } : {}) })),
  );

const redirected = (ips: string[], ports: number[]): Check[] =>
  ips.flatMap((address) => ports.map((port) => ({ op: "redirected" as const, address, port })));
/** Ports a redirected connection may have been meant for: the name-judged two and others. */
const REDIRECTED_PORTS = [80, 443, 22, 53, 5432, 8080];

const HOSTS = [
  "example.org",
  "EXAMPLE.org.",
  "a.example.org",
  "a.b.example.org",
  "A.Example.ORG",
  "xexample.org",
  "example.org.evil.test",
  "api.example.com",
  "api.example.com.",
  "other.test",
  "\u212Aexample.org",
  "192.0.2.10",
  "[2001:db8::1]",
  "::ffff:10.0.0.1",
  "10.0.0.1",
];
const ADDRESSES = [
  "192.0.2.10",
  "192.0.2.11",
  "10.1.2.3",
  "::ffff:10.1.2.3",
  "169.254.169.254",
  "100.64.0.1",
  "127.0.0.1",
  "0.0.0.0",
  "172.16.0.1",
  "172.32.0.1",
  "192.168.1.1",
  "224.0.0.1",
  "255.255.255.255",
  "203.0.113.5",
  "2001:db8::1",
  "fd00:ec2::254",
  "fe80::1%eth0",
  "::1",
  "::",
  "ff02::1",
  "[2001:db8::7]",
];
const PORTS = [22, 53, 80, 443, 8080];

export const CASES: PolicyCase[] = [
  {
    name: "empty document: deny by default",
    policy: {},
    checks: [...names(["example.org", "192.0.2.10"], [443]), ...anyPort(["example.org"])],
  },
  {
    name: "default allow without rules",
    policy: { defaultAction: "allow" },
    checks: [
      ...names(["example.org", "10.0.0.1"], [80, 443]),
      ...anyPort(["example.org", "10.0.0.1"]),
      ...dests(undefined, ADDRESSES, [443]),
      ...dests("example.org", ["203.0.113.5", "10.1.2.3", "169.254.169.254"], [443]),
      ...redirected(ADDRESSES, REDIRECTED_PORTS),
    ],
  },
  {
    name: "names, wildcards and ports",
    policy: {
      defaultAction: "deny",
      rules: [
        { action: "allow", target: "api.example.com", ports: [443] },
        { action: "allow", target: "*.example.org" },
        { action: "deny", target: "blocked.example.net" },
        { action: "allow", target: "*.example.net", ports: [80, 443] },
        { action: "allow", target: "Mixed.Case.TEST." },
      ],
    },
    checks: [
      ...names(HOSTS, PORTS),
      ...names(["blocked.example.net", "x.example.net", "example.net", "mixed.case.test"], PORTS),
      ...anyPort([...HOSTS, "blocked.example.net", "x.example.net", "mixed.case.test"]),
      ...dests("api.example.com", ["203.0.113.5", "10.1.2.3", "::ffff:203.0.113.5"], [443, 80]),
      ...dests("a.example.org", ["203.0.113.5", "169.254.169.254", "127.0.0.1"], [22]),
    ],
  },
  {
    name: "address rules and CIDRs, in order",
    policy: {
      defaultAction: "deny",
      rules: [
        { action: "deny", target: "192.0.2.11" },
        { action: "allow", target: "192.0.2.0/24", ports: [443, 8080] },
        { action: "allow", target: "10.0.0.0/8", ports: [5432] },
        { action: "allow", target: "2001:db8::/32" },
        { action: "allow", target: "169.254.169.254/32", ports: [80] },
        { action: "allow", target: "allowed.test" },
        { action: "deny", target: "203.0.113.0/24" },
        { action: "allow", target: "::/0", ports: [22] },
      ],
    },
    checks: [
      ...addresses(ADDRESSES, [...PORTS, 5432]),
      ...names(["allowed.test", "192.0.2.10", "10.9.9.9"], [443, 5432]),
      ...dests("allowed.test", ADDRESSES, [80, 443, 22]),
      ...dests(undefined, ADDRESSES, [443, 5432]),
      ...redirected(ADDRESSES, REDIRECTED_PORTS),
    ],
  },
  {
    name: "default allow with deny rules",
    policy: {
      defaultAction: "allow",
      rules: [
        { action: "deny", target: "*.tracker.test" },
        { action: "deny", target: "mail.test", ports: [25, 465] },
        { action: "deny", target: "10.0.0.0/8" },
        { action: "allow", target: "10.1.0.0/16" },
      ],
    },
    checks: [
      ...names(["a.tracker.test", "tracker.test", "mail.test", "web.test"], [25, 80, 443]),
      ...anyPort(["a.tracker.test", "mail.test"]),
      ...addresses(["10.1.2.3", "11.0.0.1", "169.254.169.254"], [80]),
      ...dests("web.test", ["10.1.2.3", "198.51.100.1", "169.254.169.254"], [443]),
      ...redirected(["10.1.2.3", "10.9.9.9", "198.51.100.1", "169.254.169.254"], REDIRECTED_PORTS),
    ],
  },
  {
    name: "DNS on any port: port-limited rules",
    policy: {
      defaultAction: "deny",
      rules: [
        { action: "deny", target: "x.test", ports: [443] },
        { action: "allow", target: "x.test", ports: [443] },
        { action: "deny", target: "y.test", ports: [80] },
        { action: "allow", target: "y.test", ports: [80, 8080] },
        { action: "deny", target: "z.test" },
        { action: "allow", target: "z.test", ports: [443] },
      ],
    },
    checks: [...anyPort(["x.test", "y.test", "z.test", "w.test"]), ...names(["y.test"], PORTS)],
  },
  {
    name: "custom reserved ranges",
    policy: { defaultAction: "allow" },
    reserved: ["198.51.100.0/24", "2001:db8::/32"],
    checks: [
      ...dests(undefined, ["198.51.100.9", "10.0.0.1", "2001:db8::9", "169.254.169.254"], [443]),
      ...redirected(["198.51.100.9", "10.0.0.1", "203.0.113.1"], [443, 8080]),
    ],
  },
  { name: "YAML-style null document", policy: null, checks: anyPort(["example.org"]) },
  // Refusals: the whole policy, naming the field.
  { name: "not an object", policy: ["allow"] },
  { name: "bad defaultAction", policy: { defaultAction: "permit" } },
  { name: "null defaultAction", policy: { defaultAction: null } },
  { name: "rules not a list", policy: { rules: { action: "allow" } } },
  { name: "rule not an object", policy: { rules: ["allow"] } },
  { name: "bad action", policy: { rules: [{ action: "ALLOW", target: "a.test" }] } },
  { name: "target missing", policy: { rules: [{ action: "allow" }] } },
  { name: "target empty", policy: { rules: [{ action: "allow", target: "" }] } },
  {
    name: "target too long",
    policy: { rules: [{ action: "allow", target: `${"a".repeat(250)}.test` }] },
  },
  ...[
    "*.*.example.org",
    "*example.org",
    "example..org",
    "-example.org",
    "example-.org",
    "1.2.3.999",
    "1.2.3",
    "01.2.3.4",
    "10.0.0.0/08",
    "10.0.0.0/33",
    "10.0.0.0/",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "2001:db8::/129",
    "exa_mple.org",
    "*.",
    "*",
    "ex ample.org",
    "\u212Aexample.org",
    "http://example.org",
    "example.org:443",
  ].map((target) => ({
    name: `bad target ${JSON.stringify(target)}`,
    policy: { rules: [{ action: "allow", target }] },
  })),
  ...[
    "a.b-c.test",
    "xn--bcher-kva.example",
    "1.2.3.4.test",
    "123.test",
    "10.0.0.1/8",
    "::1.2.3.4",
    "2001:DB8::/32",
    "0.0.0.0/0",
    "trailing.dot.",
  ].map((target) => ({
    name: `target ${JSON.stringify(target)}`,
    policy: { rules: [{ action: "allow", target, ports: [443] }] },
    checks: [
      ...names(
        ["a.b-c.test", "xn--bcher-kva.example", "1.2.3.4.test", "123.test", "trailing.dot"],
        [443],
      ),
      ...addresses(["10.200.0.1", "1.2.3.4", "::102:304", "2001:db8::5", "8.8.8.8"], [443]),
    ],
  })),
  {
    name: "ports not a list",
    policy: { rules: [{ action: "allow", target: "a.test", ports: 443 }] },
  },
  { name: "port zero", policy: { rules: [{ action: "allow", target: "a.test", ports: [0] }] } },
  {
    name: "port too big",
    policy: { rules: [{ action: "allow", target: "a.test", ports: [65536] }] },
  },
  {
    name: "port fraction",
    policy: { rules: [{ action: "allow", target: "a.test", ports: [44.5] }] },
  },
  {
    name: "port as text",
    policy: { rules: [{ action: "allow", target: "a.test", ports: ["443"] }] },
  },
  {
    name: "duplicate port",
    policy: { rules: [{ action: "allow", target: "a.test", ports: [443, 80, 443] }] },
  },
  {
    name: "too many ports",
    policy: {
      rules: [
        { action: "allow", target: "a.test", ports: Array.from({ length: 33 }, (_, i) => i + 1) },
      ],
    },
  },
  {
    name: "shape error wins over an earlier bad target",
    policy: {
      rules: [
        { action: "allow", target: "bad target" },
        { action: "maybe", target: "a.test" },
      ],
    },
  },
  {
    name: "too many rules",
    policy: { rules: Array.from({ length: 513 }, () => ({ action: "allow", target: "a.test" })) },
  },
  {
    name: "32 ports are fine",
    policy: {
      rules: [
        { action: "allow", target: "a.test", ports: Array.from({ length: 32 }, (_, i) => i + 1) },
      ],
    },
    checks: [...names(["a.test"], [1, 32, 33]), ...anyPort(["a.test"])],
  },
];
