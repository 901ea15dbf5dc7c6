package pnp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Group is the SIP multicast group (sip.mcast.net) phones send PnP SUBSCRIBEs to.
var Group = netip.MustParseAddr("224.0.1.75")

// arrival is where a datagram came in: the receiving interface and the local
// address the kernel would answer from on it (IP_PKTINFO ipi_spec_dst). For a
// multicast SUBSCRIBE that is our address on the phone's subnet, which is
// exactly the host the NOTIFY URL must name.
type arrival struct {
	ifIndex int
	local   netip.Addr
}

// conn is what the responder reads and writes: a *net.UDPConn, or in
// tests one that fails on demand.
type conn interface {
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	Close() error
}

// maxDatagram is the read buffer: larger than any UDP payload over IPv4.
const maxDatagram = 65535

// readLoop reads datagrams from c until it fails and hands each one, with
// its source and arrival (IP_PKTINFO, when the socket has it on), to handle
// on this goroutine; handle must not keep data. It returns the read error:
// net.ErrClosed once the socket was closed, anything else is a real socket
// failure. Truncated datagrams (MSG_TRUNC) are dropped: no SIP we answer is
// that large.
func readLoop(c conn, handle func(data []byte, src netip.AddrPort, arr arrival, ok bool)) error {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, 256)
	for {
		n, oobn, flags, src, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return err
		}
		if flags&unix.MSG_TRUNC != 0 {
			continue
		}
		arr, ok := parsePktinfo(oob[:oobn])
		handle(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), arr, ok)
	}
}

func parsePktinfo(oob []byte) (arrival, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return arrival{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			// struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
			idx := int(int32(binary.NativeEndian.Uint32(m.Data[0:4])))
			local := netip.AddrFrom4([4]byte(m.Data[4:8]))
			return arrival{ifIndex: idx, local: local}, true
		}
	}
	return arrival{}, false
}

const receiveBuffer = 4 << 20

// setsockopts turns on IP_PKTINFO and turns off IP_MULTICAST_ALL, so the
// socket only gets the groups it joined itself (Linux otherwise delivers any
// group some other socket on the host joined).
func setsockopts(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); serr != nil {
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); serr != nil {
			return
		}
		// A large receive buffer absorbs boot storms (every phone after a
		// power cut) and floods; FORCE needs CAP_NET_ADMIN, else the
		// kernel's rmem_max caps the plain request.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// joinGroup joins 224.0.1.75 on every interface.
func joinGroup(c *net.UDPConn, ifis []net.Interface) error {
	p := ipv4.NewPacketConn(c)
	for i := range ifis {
		if err := p.JoinGroup(&ifis[i], &net.UDPAddr{IP: Group.AsSlice()}); err != nil {
			return fmt.Errorf("join %s on %s: %w", Group, ifis[i].Name, err)
		}
	}
	return nil
}

// listenWildcard binds 0.0.0.0:port without SO_REUSEADDR, so a port another
// program holds is an error rather than silently shared.
func listenWildcard(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: port})
}

// listenGroup binds the group address itself (Go's ListenUDP would rewrite it
// to the wildcard). Such a socket receives only datagrams sent to the group,
// so a PBX keeps unicast port 5060. SO_REUSEADDR lets it coexist with a
// wildcard socket that also set it; a holder that did not still refuses.
func listenGroup(port int) (*net.UDPConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: Group.As4()}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	f := os.NewFile(uintptr(fd), "pnp-group")
	defer f.Close() // FilePacketConn dups the descriptor
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// portHolder names the processes holding UDP port on any local address, as
// "asterisk (pid 812)". It reads the socket table of the calling thread's
// network namespace. Empty when nothing is found or /proc is not readable.
func portHolder(port int) string {
	inodes := udpInodes(port)
	if len(inodes) == 0 {
		return ""
	}
	var holders []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, err := os.ReadDir(filepath.Join(p, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(p, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join(p, "comm"))
				holders = append(holders, fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(p)))
				break
			}
		}
	}
	return strings.Join(holders, ", ")
}

// udpInodes returns the socket inodes bound to the UDP port, from
// /proc/thread-self/net/udp (thread-self: the namespace of this thread).
func udpInodes(port int) map[string]bool {
	b, err := os.ReadFile("/proc/thread-self/net/udp")
	if err != nil {
		b, err = os.ReadFile("/proc/net/udp")
		if err != nil {
			return nil
		}
	}
	want := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		if len(f) < 10 || !strings.HasSuffix(f[1], want) {
			continue
		}
		inodes[f[9]] = true
	}
	return inodes
}

// bindError explains a failed bind in the user's terms.
func bindError(what string, port int, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: %w", what, err)
	}
	holder := portHolder(port)
	if holder == "" {
		holder = "another program"
	}
	return fmt.Errorf("UDP port %d is held by %s, which does not let it be shared (no SO_REUSEADDR) so PnP cannot even bind the group address %s:%d: "+
		"stop it, make it bind only its unicast address, or set [pnp] enabled = false: %w", port, holder, Group, port, err)
}

// interfaces resolves the configured names, or picks every up, multicast
// capable, non-loopback interface with an IPv4 address when none are named.
func interfaces(names []string) ([]net.Interface, error) {
	if len(names) > 0 {
		out := make([]net.Interface, 0, len(names))
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("interface %q: %w (check [pnp] interfaces / [server] interface; `ip link` lists them)", n, err)
			}
			if ifi.Flags&net.FlagUp == 0 {
				return nil, fmt.Errorf("interface %q is down: bring it up or choose another in [pnp] interfaces", n)
			}
			out = append(out, *ifi)
		}
		return out, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		if _, ok := firstIPv4(&ifi); ok {
			out = append(out, ifi)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no interface is up with an IPv4 address: name one in [pnp] interfaces")
	}
	return out, nil
}

func firstIPv4(ifi *net.Interface) (netip.Addr, bool) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}
