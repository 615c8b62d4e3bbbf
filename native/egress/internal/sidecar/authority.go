package sidecar

import (
	"regexp"
	"strconv"
)

// "host:port" as in a CONNECT request line or a Host header. Anything that is
// not plainly a host and a port (userinfo, paths, spaces, percent-encoding) is
// refused rather than interpreted.
var (
	bracketedAuthority = regexp.MustCompile(`^\[([^\]]*)\](?::(\d{1,5}))?$`)
	plainAuthority     = regexp.MustCompile(`^([^:]*)(?::(\d{1,5}))?$`)
	authorityName      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,253}$`)
	authorityIPv6      = regexp.MustCompile(`^[0-9A-Fa-f:.]{2,45}$`)
)

// parseAuthority; defaultPort 0 makes the port required.
func parseAuthority(text string, defaultPort int) (host string, port int, ok bool) {
	var portText string
	if m := bracketedAuthority.FindStringSubmatch(text); m != nil {
		host, portText = m[1], m[2]
		if !authorityIPv6.MatchString(host) {
			return "", 0, false
		}
	} else if m := plainAuthority.FindStringSubmatch(text); m != nil {
		host, portText = m[1], m[2]
		if !authorityName.MatchString(host) {
			return "", 0, false
		}
	} else {
		return "", 0, false
	}
	port = defaultPort
	if portText != "" {
		port, _ = strconv.Atoi(portText)
	}
	if port < 1 || port > 65535 {
		return "", 0, false
	}
	return host, port, true
}
