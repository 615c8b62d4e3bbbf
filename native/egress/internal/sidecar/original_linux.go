package sidecar

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// The original destination of a connection the lockdown's nat REDIRECT sent
// to one of the sidecar's listeners: what the workload dialed, as conntrack
// recorded it before the rewrite (SO_ORIGINAL_DST for IPv4,
// IP6T_SO_ORIGINAL_DST for IPv6; both option number 80). For a connection
// that was not redirected (a client on loopback dialing the listener itself)
// the kernel answers with the listener's own address.
const soOriginalDst = 80

func originalDestination(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := c.LocalAddr().(*net.TCPAddr)
	v6 := local != nil && local.IP.To4() == nil
	var out netip.AddrPort
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		var buf [28]byte // sockaddr_in6, the larger of the two
		size := uint32(len(buf))
		level := syscall.SOL_IP
		if v6 {
			level = syscall.SOL_IPV6
		}
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			sockErr = errno
			return
		}
		out, sockErr = parseSockaddr(buf[:size])
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return out, sockErr
}

// parseSockaddr reads a sockaddr_in or sockaddr_in6 (family in host order,
// port in network order).
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 8 {
		return netip.AddrPort{}, errors.New("short sockaddr")
	}
	family := binary.NativeEndian.Uint16(b[0:2])
	port := binary.BigEndian.Uint16(b[2:4])
	switch family {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
	case syscall.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, errors.New("short sockaddr_in6")
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), nil
	}
	return netip.AddrPort{}, errors.New("unknown address family")
}

// redirectedDestination is the original destination when the connection was
// redirected, ok false when it came to the listener directly.
func redirectedDestination(c *net.TCPConn) (dst netip.AddrPort, ok bool, err error) {
	dst, err = originalDestination(c)
	if err != nil {
		// ENOENT: conntrack holds no entry (no nf_conntrack, or not NATed).
		if errors.Is(err, syscall.ENOENT) {
			return netip.AddrPort{}, false, nil
		}
		return netip.AddrPort{}, false, err
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if local, ok := c.LocalAddr().(*net.TCPAddr); ok {
		here := local.AddrPort()
		if here.Addr().Unmap() == dst.Addr() && here.Port() == dst.Port() {
			return netip.AddrPort{}, false, nil
		}
	}
	return dst, true, nil
}
