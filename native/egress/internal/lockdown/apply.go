package lockdown

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Binaries are the iptables tools to drive. A namespace is filtered through
// nf_tables (iptables-nft) or x_tables (iptables-legacy); rules must go where
// the namespace's other rules are. "auto" follows Kubernetes' iptables-wrapper:
// legacy only when legacy already holds rules and nft holds none.
type Binaries struct {
	Variant                          string // "nft", "legacy" or "unknown"
	Restore4, Save4, Restore6, Save6 string
}

func binariesFor(variant string) Binaries {
	return Binaries{
		Variant:  variant,
		Restore4: "iptables-" + variant + "-restore", Save4: "iptables-" + variant + "-save",
		Restore6: "ip6tables-" + variant + "-restore", Save6: "ip6tables-" + variant + "-save",
	}
}

func onPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

func ChooseBinaries(choice string) (Binaries, error) {
	if choice != "auto" {
		b := binariesFor(choice)
		if !onPath(b.Restore4) {
			return Binaries{}, fmt.Errorf("%s not found on PATH (iptables variant %q)", b.Restore4, choice)
		}
		return b, nil
	}
	nft, legacy := onPath("iptables-nft-restore"), onPath("iptables-legacy-restore")
	switch {
	case nft && legacy:
		if ruleCount("legacy") > 0 && ruleCount("nft") == 0 {
			return binariesFor("legacy"), nil
		}
		return binariesFor("nft"), nil
	case nft:
		return binariesFor("nft"), nil
	case legacy:
		return binariesFor("legacy"), nil
	case onPath("iptables-restore"):
		return Binaries{"unknown", "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save"}, nil
	}
	return Binaries{}, errors.New("no iptables-restore found on PATH (install the iptables package)")
}

func ruleCount(variant string) int {
	out, err := run("iptables-"+variant+"-save", nil, "")
	if err != nil {
		return 0 // a variant the kernel cannot run holds no rules
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A ") {
			n++
		}
	}
	return n
}

func run(file string, args []string, input string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, file, args...)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s failed (%v): %s", file, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Error is a lockdown that could not be applied or verified.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

type Result struct {
	Binaries Binaries
	IPv6     bool // false when the kernel has no IPv6, so nothing to close
}

// Apply installs the ruleset and verifies it.
func Apply(rs Ruleset, b Binaries) (Result, error) {
	if err := applyAndVerify("IPv4", b.Restore4, b.Save4, rs.IPv4); err != nil {
		return Result{}, err
	}
	_, err := os.Stat("/proc/net/if_inet6")
	ipv6 := err == nil
	if ipv6 {
		if err := applyAndVerify("IPv6", b.Restore6, b.Save6, rs.IPv6); err != nil {
			return Result{}, err
		}
	}
	return Result{b, ipv6}, nil
}

func applyAndVerify(family, restore, save string, tables []Table) error {
	before, err := run(save, nil, "")
	if err != nil {
		return err
	}
	if _, err := run(restore, []string{"--noflush"}, RenderRestore(tables, ParseSave(before))); err != nil {
		return &Error{fmt.Sprintf("%s lockdown could not be applied: %v", family, err)}
	}
	after, err := run(save, nil, "")
	if err != nil {
		return err
	}
	if problems := Verify(tables, ParseSave(after)); len(problems) > 0 {
		return &Error{fmt.Sprintf("%s lockdown verification failed; the firewall is not what was intended:\n  %s", family, strings.Join(problems, "\n  "))}
	}
	return nil
}
