package dhcp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/inventory"
)

// ErrOtherServer is returned (wrapped) by Serve when another DHCP server
// answers on the segment and AllowOtherServers is off. The caller should treat
// it as "DHCP disabled" and keep its other servers running.
var ErrOtherServer = errors.New("another DHCP server is active on this network")

// Server is the DHCPv4 server.
type Server struct {
	log *slog.Logger
	inv inventory.Recorder
	now func() time.Time

	opts atomic.Pointer[Options]

	mu    sync.Mutex // serialises allocation
	pool  *pool
	store *store

	links    []*link      // the interfaces answered on: the LAN's first, then each local subnet's
	scout    *net.UDPConn // 0.0.0.0:68, for finding other servers; nil if unavailable
	prober   *prober      // nil when conflict probing is off or not permitted
	lockFile *os.File

	chain []stage
	send  func(b []byte, to route) error // the sockets; replaced in unit tests
	// l2unicast says replies on the LAN interface may be routed to a
	// client's MAC (its link has a packet socket; unit tests set it).
	l2unicast bool
	l2Failed  atomic.Bool // the fallback to broadcast has been logged
	// sendBatch sends queued replies in one go (sendmmsg); nil: one by one
	// through send (unit tests).
	sendBatch func(*sendScratch, []outMsg) error
	writerOut *outbox // the ACKs of one group commit; only the lease writer touches it
	// The releaser sends the writer's ACKs, paced (batch.go).
	acks     chan *outbox
	freeOut  chan *outbox
	released chan struct{}
	scoutXID dhcpv4.TransactionID
	scoutMAC net.HardwareAddr

	lastExhausted atomic.Int64  // unix seconds of the last "pool exhausted" log line
	noSubnet      atomic.Uint64 // requests dropped because no subnet served here matches them
	notServed     atomic.Uint64 // requests for the LAN subnet, left unserved by a [dhcp] without a pool
	lastNoSubnet  atomic.Int64  // unix seconds of the last "no subnet" log line
	foreignMu     sync.Mutex
	foreign       map[netip.Addr]bool // other servers we have already warned about
}

// New checks the options (Prepare) and makes the server. No socket or
// file is opened until Bind.
func New(o Options, log *slog.Logger, inv inventory.Recorder) (*Server, error) {
	p, err := Prepare(o)
	if err != nil {
		return nil, err
	}
	return p.NewServer(log, inv)
}

// NewServer makes a server from prepared options.
func (p *Prepared) NewServer(log *slog.Logger, inv inventory.Recorder) (*Server, error) {
	n := p.o
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if inv == nil {
		inv = inventory.Discard
	}
	s := &Server{
		log: log, inv: inv, now: time.Now,
		foreign:  map[netip.Addr]bool{},
		scoutMAC: net.HardwareAddr{0x02, 0x73, 0x6e, 0x6f, 0x6d, 0x70}, // locally administered "snomp"
	}
	s.opts.Store(&n)
	s.chain = defaultChain()
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, fmt.Errorf("generating the transaction ID for other-server detection: %w", err)
	}
	s.scoutXID = xid
	return s, nil
}

// Options returns the options in force, with defaults filled in.
func (s *Server) Options() Options { return *s.opts.Load() }

// link is one interface the server answers on: the LAN interface or a
// local subnet's (a VLAN sub-interface). Each has its own socket bound to
// the interface, so a request's interface names its subnet and its reply
// leaves there, and its own packet socket (l2, nil when none could be
// opened) for replies to a client's MAC.
type link struct {
	iface string
	conn  *net.UDPConn // 0.0.0.0:67 on iface
	pc    *ipv4.PacketConn
	l2    *l2conn
}

// interfaces names the interfaces to answer on: the LAN's, then each local
// subnet's.
func (o *Options) interfaces() []string {
	list := []string{o.Interface}
	for _, sn := range o.Subnets {
		if sn.Interface != "" {
			list = append(list, sn.Interface)
		}
	}
	return list
}

// Bind opens the DHCP sockets (one per interface), the conflict prober and
// the socket used to look for other servers, then loads the leases. A port
// already in use fails here.
func (s *Server) Bind(ctx context.Context) error {
	o := s.opts.Load()
	fail := func(err error) error {
		s.closeSockets()
		return err
	}
	for _, name := range o.interfaces() {
		conn, err := listenDHCP(name, o.Port)
		if err != nil {
			return fail(err)
		}
		l := &link{iface: name, conn: conn, pc: ipv4.NewPacketConn(conn)}
		s.links = append(s.links, l)
		if l2, err := openL2(name); err != nil {
			s.log.Warn("replies to clients without an address go by broadcast, not to their MAC (RFC 2131 §4.1): cannot open a packet socket on the interface; give the service CAP_NET_RAW",
				"interface", name, "err", err)
		} else {
			l.l2 = l2
		}
	}
	s.l2unicast = s.links[0].l2 != nil
	if s.send == nil {
		s.send = s.transmit
		s.sendBatch = s.udpBatch
	}
	if err := s.openState(o); err != nil {
		return fail(err)
	}
	if o.ConflictProbe > 0 {
		p, err := openProber()
		if err != nil {
			s.log.Warn("conflict probe disabled: cannot open an ICMP socket; give the service CAP_NET_RAW or widen net.ipv4.ping_group_range", "err", err)
		} else {
			s.prober = p
		}
	}
	switch {
	case o.AllowOtherServers || o.OtherServerWait <= 0:
	case !o.hasPool():
		// The search looks on the LAN only, and without a pool there the
		// LAN's own server is the expected set-up, not a rival.
		s.log.Info("not looking for other DHCP servers at start: [dhcp] has no pool, so the LAN's own server is expected", "interface", o.Interface)
	default:
		sc, err := listenScout(o.Interface, o.Port+1)
		if err != nil {
			s.log.Warn("cannot look for other DHCP servers at start (client port in use); only passive detection is active", "port", o.Port+1, "err", err)
		} else {
			s.scout = sc
		}
	}
	used, total := s.PoolUsage()
	s.log.Info("dhcp bound", "interface", o.Interface, "port", o.Port, "pool", o.poolText(),
		"leases_active", used, "pool_size", total, "conflict_probe", s.prober != nil)
	for _, sn := range o.Subnets {
		s.log.Info("dhcp subnet", "network", sn.Subnet, "interface", sn.Interface, "relayed", sn.Interface == "",
			"pool", sn.poolText())
	}
	return nil
}

// openState locks the state directory, loads the leases and starts the
// journal writer.
func (s *Server) openState(o *Options) error {
	if err := s.lockState(o.StateDir); err != nil {
		return err
	}
	st, leases, err := openStore(o.StateDir, s.log)
	if err != nil {
		return err
	}
	s.store = st
	s.pool = newPool(*o, leases)
	s.writerOut = &outbox{}
	s.startReleaser()
	s.store.start(func() []Lease {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pool.all()
	}, s.handOff, s.stopReleaser)
	return nil
}

// lockState makes sure only one server uses the lease files.
func (s *Server) lockState(dir string) error {
	if dir == "" {
		return errors.New("no state directory: set [server] state_dir")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.OpenFile(dir+"/dhcp.lock", os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("opening lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("another snomprov DHCP server uses the leases in %s: stop it first: %w", dir, err)
	}
	s.lockFile = f
	return nil
}

// transmit sends a reply the way replyDestination routed it. A frame the
// packet socket cannot send goes out by broadcast instead, which every
// client accepts; the first such failure is logged.
func (s *Server) transmit(b []byte, r route) error {
	l := s.linkOf(r)
	if r.hw != nil && l.l2 != nil {
		err := l.l2.send(b, netip.AddrPortFrom(r.src, uint16(s.opts.Load().Port)), r.to, r.hw)
		if err == nil {
			return nil
		}
		if !s.l2Failed.Swap(true) {
			s.log.Warn("sending a reply to a client's MAC failed; that reply and later failures go by broadcast", "to", r, "err", err)
		}
	}
	if r.hw != nil {
		r = route{to: netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), r.to.Port()), via: r.via}
	}
	_, err := l.conn.WriteToUDPAddrPort(b, r.to)
	return err
}

// linkOf is the link a reply leaves by: its request's, else the LAN's.
func (s *Server) linkOf(r route) *link {
	if r.via != nil {
		return r.via
	}
	return s.links[0]
}

func (s *Server) closeSockets() {
	if s.store != nil { // first: it hands out the last ACKs
		s.store.close()
		s.store = nil
	}
	for _, l := range s.links {
		l.conn.Close()
		if l.l2 != nil {
			l.l2.close()
		}
	}
	if s.scout != nil {
		s.scout.Close()
		s.scout = nil
	}
	if s.prober != nil {
		s.prober.close()
	}
	if s.lockFile != nil {
		s.lockFile.Close()
		s.lockFile = nil
	}
}

// listenDHCP opens 0.0.0.0:port bound to iface, deliberately without
// SO_REUSEADDR/SO_REUSEPORT so a second DHCP server on the same interface
// fails with EADDRINUSE instead of silently sharing the port.
func listenDHCP(iface string, port int) (*net.UDPConn, error) {
	c, err := udpSocket(iface, port, false)
	if errors.Is(err, unix.EADDRINUSE) {
		where := "this host"
		if iface != "" {
			where = iface
		}
		return nil, fmt.Errorf("UDP port %d on %s is already in use, probably by another DHCP server (dnsmasq, kea, isc-dhcp-server or a second snomprov): stop it, or set [dhcp] enabled = false: %w", port, where, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening UDP port %d on %q: %w", port, iface, err)
	}
	return c, nil
}

func listenScout(iface string, port int) (*net.UDPConn, error) {
	return udpSocket(iface, port, true)
}

func udpSocket(iface string, port int, reuse bool) (*net.UDPConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
		return nil, err
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, err
		}
	}
	// A deep receive buffer absorbs boot storms: SO_RCVBUFFORCE goes past
	// net.core.rmem_max (about 200 KiB, ~90 packets) with CAP_NET_ADMIN;
	// without it SO_RCVBUF gets what rmem_max allows.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if iface != "" {
		if err := unix.BindToDevice(fd, iface); err != nil {
			return nil, fmt.Errorf("binding to interface %q (does it exist?): %w", iface, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("dhcp-udp-%d", port))
	ok = true
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// Serve looks for other DHCP servers, then answers clients until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if len(s.links) == 0 {
		return errors.New("Serve called before Bind")
	}
	defer s.closeSockets()
	stopAll := func() {
		for _, l := range s.links {
			l.conn.SetReadDeadline(time.Unix(1, 0))
		}
	}
	stop := context.AfterFunc(ctx, stopAll)
	defer stop()

	if s.prober != nil {
		go s.prober.run()
	}
	if s.scout != nil {
		found, err := s.findOtherServers(ctx)
		s.scout.Close()
		s.scout = nil
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("looking for other DHCP servers failed; serving anyway", "err", err)
		} else if len(found) > 0 {
			for _, f := range found {
				s.log.Error("another DHCP server answers on this network; DHCP stays off (set [dhcp] allow_other_servers = true for serve = \"phones\" set-ups)",
					"server", f.server, "offered", f.offered, "option66", f.opt66, "option67", f.opt67)
			}
			return fmt.Errorf("%w: %s (it hands out option 66 %q, option 67 %q); turn it off or set [dhcp] allow_other_servers = true",
				ErrOtherServer, found[0].server, found[0].opt66, found[0].opt67)
		}
	}

	janitor := time.NewTicker(5 * time.Second)
	defer janitor.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-janitor.C:
				s.mu.Lock()
				s.pool.expireOffers(s.now())
				s.mu.Unlock()
			}
		}
	}()

	// GOMAXPROCS/2 readers share the socket and handle each packet inline
	// (allocation is serialised anyway; the other cores are left to the
	// lease writer, the GC and, on small boxes, everything else):
	// nothing on the way blocks (the lease writer sends ACKs after fsync,
	// probes run on goroutines of their own), and no hand-off between
	// goroutines costs a wake-up per packet. The kernel queues the rest
	// in the socket's 4 MiB receive buffer. Each interface's socket has
	// readers of its own.
	readers := max(1, runtime.GOMAXPROCS(0)/2)
	errc := make(chan error, readers*len(s.links))
	for _, l := range s.links {
		for i := 0; i < readers; i++ {
			go func() { errc <- s.readLoop(ctx, l) }()
		}
	}
	var first error
	for i := 0; i < readers*len(s.links); i++ {
		if err := <-errc; err != nil && first == nil {
			first = err
			stopAll() // stop the other readers
		}
	}
	return first
}

func (s *Server) readLoop(ctx context.Context, l *link) error {
	return s.readLoopBatch(l, func(err error) (bool, error) {
		if ctx.Err() != nil {
			return true, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return true, fmt.Errorf("socket closed unexpectedly: %w", err)
		}
		var errno syscall.Errno
		if errors.As(err, &errno) && errno.Temporary() {
			return false, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return true, nil // another reader failed and stopped us
		}
		return true, fmt.Errorf("reading from socket: %w", err)
	})
}

// Reload checks new options and swaps them in. Leases are kept; the pools,
// subnets and reservations change at once. The interfaces, port and state
// directory need a restart.
func (s *Server) Reload(o Options) error {
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	if err := s.RestartNeeded(p); err != nil {
		return err
	}
	s.Apply(p)
	return nil
}

// RestartNeeded reports, as an error naming the keys, whether p changes
// what is bound to sockets and files (the interfaces, a local subnet's
// among them, port, state directory).
func (s *Server) RestartNeeded(p *Prepared) error {
	n, cur := p.o, s.opts.Load()
	if n.Interface != cur.Interface || n.Port != cur.Port || n.StateDir != cur.StateDir {
		return errors.New("changing the DHCP interface, port or state directory needs a restart of snomprov")
	}
	if n.hasPool() != cur.hasPool() && !n.AllowOtherServers {
		// Bind searched for another server on the LAN only when it was to
		// serve the LAN; serving it from now on needs that search first.
		return errors.New("giving [dhcp] a pool, or taking it away, changes whether the LAN is served and needs a restart of snomprov (its start looks for other DHCP servers there)")
	}
	if a, b := n.interfaces(), cur.interfaces(); !sameSet(a, b) {
		return fmt.Errorf("serving DHCP on other interfaces (dhcp.subnets interface: now %v, running on %v) needs a restart of snomprov", a[1:], b[1:])
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Apply swaps prepared options in; it cannot fail. The caller has refused
// what RestartNeeded reports: the socket-bound fields keep their values.
func (s *Server) Apply(p *Prepared) {
	n, cur := p.o, s.opts.Load()
	n.Interface, n.Port, n.StateDir = cur.Interface, cur.Port, cur.StateDir
	s.mu.Lock()
	if s.pool != nil {
		s.pool.setRange(n)
	}
	s.opts.Store(&n)
	s.mu.Unlock()
	s.log.Info("dhcp options reloaded", "pool", n.poolText())
}

// PoolUsage reports how many pool addresses are held (bound, quarantined or
// reserved) and the pool size, every subnet's together.
func (s *Server) PoolUsage() (used, total int) {
	for _, u := range s.SubnetUsage() {
		used, total = used+u.Used, total+u.Size
	}
	return used, total
}

// SubnetUsage is one subnet's pool: its addresses held and its size.
type SubnetUsage struct {
	Subnet     netip.Prefix
	LAN        bool // [dhcp]'s own pool, not a [[dhcp.subnets]] entry's
	Used, Size int
}

// SubnetUsage reports the pool of each subnet, the primary first, then
// Options.Subnets in order; a subnet without a pool is left out.
func (s *Server) SubnetUsage() []SubnetUsage {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts.Load() // swapped with the pool's ranges under mu (Apply)
	var used []int
	if s.pool != nil {
		used = s.pool.usage(s.now())
	}
	var out []SubnetUsage
	for i, sn := range o.all() {
		if !sn.hasPool() {
			continue
		}
		u := SubnetUsage{Subnet: sn.Subnet, LAN: i == 0, Size: int(addrU32(sn.PoolEnd)-addrU32(sn.PoolStart)) + 1}
		if used != nil {
			u.Used = used[i]
		}
		out = append(out, u)
	}
	return out
}

// Leases returns the current lease table, sorted by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	var out []Lease
	if s.pool != nil {
		out = s.pool.all()
	}
	s.mu.Unlock()
	sortLeases(out)
	return out
}

func hexDecode(s string) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}
