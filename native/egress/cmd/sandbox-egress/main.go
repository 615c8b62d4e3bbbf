// sandbox-egress: the egress lockdown and sidecar as one static executable.
//
//	sandbox-egress egress-init [flags]   install the fail-closed firewall, verify it, exit
//	sandbox-egress egress [flags]        run the sidecar (DNS and proxies) until SIGTERM
//
// ("lockdown" and "sidecar" are aliases.) The flags, their defaults (the
// egress contract, src/egress/contract.ts) and the log lines are those of
// `sandbox-operator egress-init` / `egress`, so either program can stand in
// for the other behind the same command line.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"sandboxing.dev/sandbox-egress/internal/contract"
	"sandboxing.dev/sandbox-egress/internal/lockdown"
	"sandboxing.dev/sandbox-egress/internal/logx"
	"sandboxing.dev/sandbox-egress/internal/policy"
	"sandboxing.dev/sandbox-egress/internal/sidecar"
)

var version = "dev"

const usage = `Usage: sandbox-egress <command> [flags]

Commands:
  egress-init (lockdown)  Install the egress firewall in this network namespace, verify it, exit
  egress (sidecar)        Run the egress sidecar: DNS proxy, explicit and transparent proxies
  version                 Print the version
`

func main() { os.Exit(run(os.Args[1:])) }

func run(argv []string) int {
	if len(argv) == 0 {
		return usageError("no command given", usage)
	}
	switch argv[0] {
	case "egress-init", "lockdown":
		return runLockdown(argv[1:])
	case "egress", "sidecar":
		return runSidecar(argv[1:])
	case "version", "--version":
		fmt.Printf("sandbox-egress %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Print(usage)
		return 0
	}
	return usageError(fmt.Sprintf("unknown command %q", argv[0]), usage)
}

func usageError(msg, text string) int {
	fmt.Fprintf(os.Stderr, "sandbox-egress: %s\n\n%s", msg, text)
	return 2
}

// portFlag and uidFlag refuse out-of-range values at parse time.
type intFlag struct {
	v        *int
	min, max int
}

func (f intFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.Itoa(*f.v)
}

func (f intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		return fmt.Errorf("must be an integer from %d to %d", f.min, f.max)
	}
	*f.v = n
	return nil
}

func port(fs *flag.FlagSet, name string, def int, help string) *int {
	v := def
	fs.Var(intFlag{&v, 1, 65535}, name, help)
	return &v
}

func uid(fs *flag.FlagSet, name string, def int, help string) *int {
	v := def
	fs.Var(intFlag{&v, 1, 2147483647}, name, help)
	return &v
}

type lockdownFlags struct {
	policyFile                 *string
	sidecarUID                 *int
	dnsPort, httpPort, tlsPort *int
	iptables                   *string
	controller                 *string
	// Explicit tools, overriding --iptables (a distribution's own names).
	restore4, save4, restore6, save6 *string
}

func addLockdownFlags(fs *flag.FlagSet, uidDefault int) lockdownFlags {
	c := contract.Egress
	return lockdownFlags{
		policyFile: fs.String("policy-file", "", "the sandbox's network.egress policy (JSON or YAML)"),
		sidecarUID: uid(fs, "sidecar-uid", uidDefault, "the only UID allowed out directly"),
		dnsPort:    port(fs, "dns-port", c.Ports.DNS, "where UDP/TCP 53 is redirected"),
		httpPort:   port(fs, "http-port", c.Ports.HTTP, "where TCP 80 is redirected"),
		tlsPort:    port(fs, "tls-port", c.Ports.TLS, "where TCP 443 is redirected"),
		iptables:   fs.String("iptables", "auto", "iptables implementation: auto, nft or legacy"),
		controller: fs.String("controller", "", "the controller's policy endpoint IP:PORT: only the sidecar's UID reaches it, and the proxies never dial it"),
		restore4:   fs.String("iptables-restore", "", "explicit iptables-restore to run (with the three below; overrides --iptables)"),
		save4:      fs.String("iptables-save", "", "explicit iptables-save"),
		restore6:   fs.String("ip6tables-restore", "", "explicit ip6tables-restore"),
		save6:      fs.String("ip6tables-save", "", "explicit ip6tables-save"),
	}
}

func parse(fs *flag.FlagSet, argv []string, f lockdownFlags) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(argv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *f.policyFile == "" {
		return errors.New("--policy-file: required")
	}
	explicit := []string{*f.restore4, *f.save4, *f.restore6, *f.save6}
	if n := countSet(explicit); n != 0 && n != len(explicit) {
		return errors.New("--iptables-restore, --iptables-save, --ip6tables-restore and --ip6tables-save go together")
	}
	if *f.controller != "" {
		if _, err := sidecar.ParseEndpoint(*f.controller); err != nil {
			return fmt.Errorf("--controller: %v", err)
		}
	}
	switch *f.iptables {
	case "auto", "nft", "legacy":
	default:
		return fmt.Errorf("--iptables: must be auto, nft or legacy, not %q", *f.iptables)
	}
	return nil
}

func flagUsage(fs *flag.FlagSet, head string) string {
	var b = head + "\nFlags:\n"
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		b += fmt.Sprintf("  --%-14s %s%s\n", f.Name, f.Usage, def)
	})
	return b
}

func runLockdown(argv []string) int {
	fs := flag.NewFlagSet("egress-init", flag.ContinueOnError)
	f := addLockdownFlags(fs, contract.Egress.SidecarUID)
	help := flagUsage(fs, "Usage: sandbox-egress egress-init [flags]\n\nInstalls the egress lockdown (iptables and ip6tables) in the current network\nnamespace, verifies it, and exits. Needs root with NET_ADMIN.\n")
	if err := parse(fs, argv, f); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(help)
			return 0
		}
		return usageError(err.Error(), help)
	}
	log := logx.New(os.Stdout)
	if err := applyLockdown(f, *f.sidecarUID, log); err != nil {
		// Fail loudly: the workload must not start without the lockdown.
		log.Log(nil, logx.Fatal, "egress lockdown failed", "err", err.Error())
		return 1
	}
	return 0
}

func applyLockdown(f lockdownFlags, sidecarUID int, log *slog.Logger) error {
	text, err := os.ReadFile(*f.policyFile)
	if err != nil {
		return err
	}
	// Validated, not compiled in: the firewall is the same for every policy
	// (the sidecar judges address rules and defaultAction per connection), but
	// a sandbox whose policy its sidecar would refuse should not start.
	p, err := policy.FromText(text)
	if err != nil {
		return err
	}
	controller, _ := sidecar.ParseEndpoint(*f.controller) // validated by parse; "" is no endpoint
	rs := lockdown.Build(lockdown.Config{
		SidecarUID: sidecarUID, Controller: controller,
		Ports: lockdown.ListenPorts{DNS: *f.dnsPort, HTTP: *f.httpPort, TLS: *f.tlsPort},
	})
	var b lockdown.Binaries
	if *f.restore4 != "" {
		b = lockdown.Binaries{Variant: "explicit", Restore4: *f.restore4, Save4: *f.save4, Restore6: *f.restore6, Save6: *f.save6}
	} else if b, err = lockdown.ChooseBinaries(*f.iptables); err != nil {
		return err
	}
	res, err := lockdown.Apply(rs, b)
	if err != nil {
		return err
	}
	log.Info("egress lockdown installed and verified", "variant", res.Binaries.Variant, "sidecarUid", sidecarUID, "ipv6", res.IPv6, "rules", len(p.Rules))
	return nil
}

func runSidecar(argv []string) int {
	c := contract.Egress
	fs := flag.NewFlagSet("egress", flag.ContinueOnError)
	f := addLockdownFlags(fs, 0)
	doLockdown := fs.Bool("lockdown", false, "first install the egress lockdown as egress-init does (root with NET_ADMIN), then serve; with --sidecar-uid the process then drops to that UID and loses every capability")
	sandbox := fs.String("sandbox", "unknown", "namespace/name, on every log line")
	proxyPort := port(fs, "proxy-port", c.Ports.Proxy, "explicit proxy")
	healthPort := port(fs, "health-port", c.Ports.Health, "probes only: /healthz /readyz, on every address")
	metricsPort := port(fs, "metrics-port", c.Ports.Metrics, "/metrics and detailed /readyz, on loopback")
	httpDest := port(fs, "http-destination-port", 80, "the port traffic redirected to --http-port was meant for (the redirect hides it)")
	tlsDest := port(fs, "tls-destination-port", 443, "the port traffic redirected to --tls-port was meant for")
	upstreamDNS := fs.String("upstream-dns", "", "resolver HOST[:PORT] (default: first nameserver in /etc/resolv.conf)")
	policyAck := fs.String("policy-ack-file", "", "after every load of the policy file, record the sha256 of the bytes put in force here (the docker backend's acknowledgement; "+c.PolicyAckFile+" in its sidecars); opened before dropping root")
	policyURL := fs.String("policy-url", "", "the controller's policy endpoint (https://IP:PORT): follow it live instead of the policy file, which stays the start-up policy")
	policyToken := fs.String("policy-token-file", "", "with --policy-url: the projected ServiceAccount token to present (re-read on every dial)")
	policyCA := fs.String("policy-ca-file", "", "with --policy-url: PEM of the CA that signed the endpoint's certificate")
	policyServerName := fs.String("policy-server-name", "", "with --policy-url: the name the endpoint's certificate must carry (default: the URL's IP)")
	help := flagUsage(fs, "Usage: sandbox-egress egress [flags]\n\nRuns the egress sidecar: a DNS proxy answering only allowed names, an explicit\nHTTP proxy (CONNECT), and transparent proxies judging port 80 by Host and 443 by\nTLS SNI. Follows the policy file for changes.\n")
	if err := parse(fs, argv, f); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(help)
			return 0
		}
		return usageError(err.Error(), help)
	}
	if *policyURL != "" && (*policyToken == "" || *policyCA == "" || !strings.HasPrefix(*policyURL, "https://")) {
		return usageError("--policy-url must be https:// and needs --policy-token-file and --policy-ca-file", help)
	}
	log := logx.New(os.Stdout)
	if *doLockdown {
		if *f.sidecarUID == 0 {
			return usageError("--lockdown needs --sidecar-uid (the UID the firewall lets out)", help)
		}
		if err := applyLockdown(f, *f.sidecarUID, log); err != nil {
			log.Log(nil, logx.Fatal, "egress lockdown failed", "err", err.Error())
			return 1
		}
	}
	s, err := sidecar.Start(sidecar.Options{
		Sandbox: *sandbox, PolicyFile: *f.policyFile, PolicyAckFile: *policyAck, UpstreamDNS: *upstreamDNS,
		Ports:            sidecar.Ports{Proxy: *proxyPort, DNS: *f.dnsPort, HTTP: *f.httpPort, TLS: *f.tlsPort, Health: *healthPort, Metrics: *metricsPort},
		DestinationPorts: sidecar.DestinationPorts{HTTP: *httpDest, TLS: *tlsDest},
		UID:              *f.sidecarUID, GID: *f.sidecarUID,
		Log:        log,
		Channel:    sidecar.ChannelOptions{URL: strings.TrimSuffix(*policyURL, "/"), TokenFile: *policyToken, CAFile: *policyCA, ServerName: *policyServerName},
		Controller: controllerEndpoint(*f.controller, *policyURL),
	})
	if err != nil {
		log.Log(nil, logx.Fatal, "egress sidecar failed to start", "err", err.Error())
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	// Closing the sidecar closes egress: the firewall stays and nothing else is let out.
	s.Close()
	return 0
}

// controllerEndpoint: --controller, else the host:port of --policy-url (an IP).
func controllerEndpoint(flagValue, url string) netip.AddrPort {
	if flagValue == "" {
		flagValue = strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/")
	}
	ap, _ := sidecar.ParseEndpoint(flagValue)
	return ap
}

func countSet(values []string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}
