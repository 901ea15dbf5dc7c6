// Package netif finds the LAN interface and its IPv4 address at start, for
// the [server] interface and advertise defaults. Its errors say what is
// missing so the caller can log them while it retries (on a Raspberry Pi the
// service often starts before the link or the DHCP lease is up).
package netif

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Errors the caller may retry on; every error returned wraps one of them.
var (
	ErrNoDefaultRoute = errors.New("no IPv4 default route")
	ErrNoInterface    = errors.New("no such network interface")
	ErrNoIPv4         = errors.New("no IPv4 address")
)

// openProcNet opens /proc/.../net/<name>. thread-self follows the calling
// thread's network namespace (tests run inside namespaces), /proc/net the
// process's; both stay readable under the unit's ProcSubset=pid.
func openProcNet(name string) (*os.File, error) {
	f, err := os.Open("/proc/thread-self/net/" + name)
	if err != nil {
		f, err = os.Open("/proc/net/" + name)
	}
	return f, err
}

// DefaultRouteInterface names the interface of the IPv4 default route with
// the lowest metric.
func DefaultRouteInterface() (string, error) {
	f, err := openProcNet("route")
	if err != nil {
		return "", fmt.Errorf("reading the routing table: %w; set [server] interface", err)
	}
	defer f.Close()
	return parseDefaultRoute(f)
}

// parseDefaultRoute reads the /proc/net/route format: a header line, then
// Iface Destination Gateway Flags RefCnt Use Metric Mask ... in hex.
func parseDefaultRoute(r io.Reader) (string, error) {
	const rtfUp = 0x1
	best, bestMetric := "", int64(-1)
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.ParseInt(f[6], 10, 64)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading the routing table: %w; set [server] interface", err)
	}
	if best == "" {
		return "", fmt.Errorf("%w yet, so the LAN interface is unknown; set [server] interface (see `ip link`)", ErrNoDefaultRoute)
	}
	return best, nil
}

// IPv4 returns the interface's first IPv4 address with its subnet mask,
// e.g. 10.0.0.2/24.
func IPv4(ifname string) (netip.Prefix, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("interface %s: %w; check [server] interface (see `ip link`)", ifname, ErrNoInterface)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("reading the addresses of interface %s: %w", ifname, err)
	}
	if p, ok := firstIPv4(addrs); ok {
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("interface %s has %w yet; wait for its DHCP lease or give it a static address", ifname, ErrNoIPv4)
}

func firstIPv4(addrs []net.Addr) (netip.Prefix, bool) {
	if list := ipv4Prefixes(addrs); len(list) > 0 {
		return list[0], true
	}
	return netip.Prefix{}, false
}

// ipv4Prefixes are the IPv4 addresses among addrs, each with its prefix length.
func ipv4Prefixes(addrs []net.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip4 := ipn.IP.To4()
		if ip4 == nil {
			continue
		}
		ones, bits := ipn.Mask.Size()
		if bits == 128 { // a v4 address with a 16-byte mask
			ones -= 96
		}
		if bits == 0 || ones < 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(ip4)), ones))
	}
	return out
}

// AllIPv4 returns every interface of this machine (of the calling thread's
// network namespace) with its IPv4 addresses, e.g. "eth0.20":
// [10.20.0.1/24]; an interface without one is listed with none.
func AllIPv4() (map[string][]netip.Prefix, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing the network interfaces: %w", err)
	}
	out := make(map[string][]netip.Prefix, len(ifis))
	for _, ifi := range ifis {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("reading the addresses of interface %s: %w", ifi.Name, err)
		}
		out[ifi.Name] = ipv4Prefixes(addrs)
	}
	return out, nil
}

// JoinAddrs writes addresses as "a, b", the way messages and other DHCP
// servers' configs (Kea's option data) list them.
func JoinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
