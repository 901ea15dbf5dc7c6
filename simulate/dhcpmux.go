package simulate

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/phone"
)

// dhcpMux shares one AF_PACKET socket among all simulated phones of a run.
// With one socket per phone the kernel copies every broadcast OFFER/ACK into
// every socket and every phone parses it: O(N²) work for N phones. The mux
// reads each reply once and hands it only to the phone whose DISCOVER or
// REQUEST carried the same xid and chaddr; everything else is dropped.
type dhcpMux struct {
	raw net.PacketConn // DHCP payloads in and out (UDP/IP framing done by nclient4)

	mu      sync.Mutex
	waiting map[dhcpKey]*muxConn

	closing   atomic.Bool
	closeOnce sync.Once
	readDone  chan struct{}
}

// dhcpKey identifies one DHCP transaction of one phone.
type dhcpKey struct {
	xid    [4]byte
	chaddr phone.MAC
}

// BOOTP layout (RFC 2131 §2): op at 0, htype 1, hlen 2, xid 4..8,
// chaddr 28..44, magic cookie 236..240, options after it.
const (
	bootpXID          = 4
	bootpCHAddr       = 28
	bootpCookie       = 236
	bootpMinLen       = 240
	bootReply         = 2
	htypeEthernet     = 1
	muxQueuePerPhone  = 8
	muxReadBufferSize = 4 << 20 // room for a burst of 1000 OFFERs
)

var dhcpMagicCookie = [4]byte{99, 130, 83, 99}

// newDHCPMux opens the shared broadcast socket on iface (bound to the DHCP
// client port 68) and starts its reader.
func newDHCPMux(iface string) (*dhcpMux, error) {
	raw, err := nclient4.NewRawUDPConn(iface, nclient4.ClientPort)
	if err != nil {
		return nil, rawSocketError(iface, err)
	}
	if b, ok := raw.(*nclient4.BroadcastRawUDPConn); ok {
		// Without a filter the socket gets every IPv4 packet of the
		// interface, including the phones' HTTP firmware downloads.
		// Both settings only save work: the reader checks every packet anyway.
		_ = setDHCPClientFilter(b.PacketConn)
		_ = setReadBuffer(b.PacketConn, muxReadBufferSize)
	}
	return newDHCPMuxConn(raw), nil
}

// newDHCPMuxConn starts a mux on raw, which carries DHCP payloads (a
// BroadcastRawUDPConn, or any PacketConn in tests). The mux owns raw.
func newDHCPMuxConn(raw net.PacketConn) *dhcpMux {
	m := &dhcpMux{raw: raw, waiting: map[dhcpKey]*muxConn{}, readDone: make(chan struct{})}
	go m.readLoop()
	return m
}

// Close closes the shared socket and waits for the reader to stop.
func (m *dhcpMux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		err = m.raw.Close()
		<-m.readDone
	})
	return err
}

func (m *dhcpMux) readLoop() {
	defer close(m.readDone)
	buf := make([]byte, nclient4.MaxMessageSize)
	for {
		n, from, err := m.raw.ReadFrom(buf)
		if err != nil {
			if m.closing.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			// A transient read error must not end DHCP for every phone.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m.dispatch(buf[:n], from)
	}
}

// replyKey returns the transaction a BOOTREPLY belongs to; ok is false for
// anything that is not a well-formed Ethernet BOOTREPLY.
func replyKey(p []byte) (k dhcpKey, ok bool) {
	if len(p) < bootpMinLen || p[0] != bootReply || p[1] != htypeEthernet || p[2] != 6 ||
		[4]byte(p[bootpCookie:bootpCookie+4]) != dhcpMagicCookie {
		return k, false
	}
	copy(k.xid[:], p[bootpXID:bootpXID+4])
	copy(k.chaddr[:], p[bootpCHAddr:bootpCHAddr+6])
	return k, true
}

// dispatch hands one received DHCP payload to the phone waiting for it. It
// reports whether a phone took it.
func (m *dhcpMux) dispatch(p []byte, from net.Addr) bool {
	k, ok := replyKey(p)
	if !ok {
		return false
	}
	m.mu.Lock()
	c := m.waiting[k]
	m.mu.Unlock()
	if c == nil {
		return false
	}
	return c.deliver(muxPacket{data: append([]byte(nil), p...), from: from})
}

// conn returns the PacketConn of one phone: its writes go out of the shared
// socket, its reads see only the replies to its own transactions.
func (m *dhcpMux) conn(mac phone.MAC) *muxConn {
	return &muxConn{mux: m, mac: mac, in: make(chan muxPacket, muxQueuePerPhone), closed: make(chan struct{})}
}

func (m *dhcpMux) register(k dhcpKey, c *muxConn) {
	m.mu.Lock()
	m.waiting[k] = c
	m.mu.Unlock()
}

func (m *dhcpMux) unregister(keys []dhcpKey, c *muxConn) {
	m.mu.Lock()
	for _, k := range keys {
		if m.waiting[k] == c {
			delete(m.waiting, k)
		}
	}
	m.mu.Unlock()
}

type muxPacket struct {
	data []byte
	from net.Addr
}

// muxConn is one phone's view of the shared socket, for nclient4.NewWithConn.
type muxConn struct {
	mux *dhcpMux
	mac phone.MAC
	in  chan muxPacket

	mu           sync.Mutex
	keys         []dhcpKey
	readDeadline time.Time

	closeOnce sync.Once
	closed    chan struct{}
}

var _ net.PacketConn = (*muxConn)(nil)

// deliver queues p without blocking: a phone that is not reading loses the
// packet, as it would on a full socket buffer, instead of stalling the others.
func (c *muxConn) deliver(p muxPacket) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.in <- p:
		return true
	default:
		return false
	}
}

// WriteTo sends a DHCP payload and, first, registers its xid so the reply
// finds its way back. Only this phone's MAC is registered, whatever chaddr
// the payload names.
func (c *muxConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if len(b) >= bootpXID+4 {
		k := dhcpKey{xid: [4]byte(b[bootpXID : bootpXID+4]), chaddr: c.mac}
		c.mu.Lock()
		known := false
		for _, have := range c.keys {
			known = known || have == k
		}
		if !known {
			c.keys = append(c.keys, k)
		}
		c.mu.Unlock()
		c.mux.register(k, c)
	}
	return c.mux.raw.WriteTo(b, addr)
}

// ReadFrom returns the next reply addressed to this phone.
func (c *muxConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	default:
	}
	c.mu.Lock()
	deadline := c.readDeadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case p := <-c.in:
		return copy(b, p.data), p.from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-expired:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// Close forgets this phone's transactions; the shared socket stays open.
func (c *muxConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		keys := c.keys
		c.keys = nil
		c.mu.Unlock()
		c.mux.unregister(keys, c)
	})
	return nil
}

func (c *muxConn) LocalAddr() net.Addr { return &net.UDPAddr{Port: nclient4.ClientPort} }

// SetDeadline sets the read deadline; writes to a raw socket do not block.
func (c *muxConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline applies to ReadFrom calls that start after it.
func (c *muxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return nil
}

func (c *muxConn) SetWriteDeadline(time.Time) error { return nil }

// dhcpClientFilter accepts unfragmented IPv4/UDP packets to port 68 (the
// socket is SOCK_DGRAM, so the filter sees the packet from the IP header).
var dhcpClientFilter = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 9, Size: 1}, // IP protocol
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 6, Size: 2}, // flags + fragment offset
	bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
	bpf.LoadMemShift{Off: 0}, // X = IP header length
	bpf.LoadIndirect{Off: 2, Size: 2},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: nclient4.ClientPort, SkipTrue: 1},
	bpf.RetConstant{Val: 0x40000},
	bpf.RetConstant{Val: 0},
}

func setDHCPClientFilter(c net.PacketConn) error {
	s, ok := c.(interface {
		SetBPF([]bpf.RawInstruction) error
	})
	if !ok {
		return errors.New("socket takes no BPF filter")
	}
	prog, err := bpf.Assemble(dhcpClientFilter)
	if err != nil {
		return err
	}
	return s.SetBPF(prog)
}

// setReadBuffer enlarges the socket's receive buffer beyond rmem_max when
// allowed (root), else up to it.
func setReadBuffer(c net.PacketConn, size int) error {
	s, ok := c.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return errors.New("socket has no file descriptor")
	}
	rc, err := s.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
