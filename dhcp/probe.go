package dhcp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// prober checks with an ICMP echo that nobody uses an address before it is
// offered for the first time (as dnsmasq does). Probes run concurrently: each
// waits only in the goroutine of the request that needs it, so one probe
// never stalls other clients (dnsmasq pings serially and blocks ~3 s).
//
// It needs an ICMP socket: unprivileged ("ping socket", allowed when the
// process's group is inside net.ipv4.ping_group_range) or raw (CAP_NET_RAW).
type prober struct {
	conn *icmp.PacketConn
	raw  bool
	id   int
	seq  atomic.Uint32

	mu      sync.Mutex
	waiting map[uint16]probeWait
}

type probeWait struct {
	ip   netip.Addr
	seen chan struct{}
}

func openProber() (*prober, error) {
	p := &prober{id: os.Getpid() & 0xffff, waiting: map[uint16]probeWait{}}
	c, err := icmp.ListenPacket("udp4", "0.0.0.0")
	if err != nil {
		var rerr error
		c, rerr = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		if rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		p.raw = true
	}
	p.conn = c
	return p, nil
}

func (p *prober) close() { p.conn.Close() }

// run reads echo replies until the socket is closed.
func (p *prober) run() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || (p.raw && echo.ID != p.id) {
			continue
		}
		src := hostAddr(from)
		p.mu.Lock()
		w, ok := p.waiting[uint16(echo.Seq)]
		p.mu.Unlock()
		if ok && w.ip == src {
			select {
			case w.seen <- struct{}{}:
			default:
			}
		}
	}
}

// inUse sends one echo request to ip and reports whether a reply came
// within timeout. If the probe cannot be sent the address counts as free:
// the client's own DECLINE remains the safety net.
func (p *prober) inUse(ip netip.Addr, timeout time.Duration) bool {
	seq := uint16(p.seq.Add(1))
	w := probeWait{ip: ip, seen: make(chan struct{}, 1)}
	p.mu.Lock()
	p.waiting[seq] = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, seq)
		p.mu.Unlock()
	}()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: int(seq), Data: []byte("snomprov-dhcp-probe")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	var dst net.Addr = &net.IPAddr{IP: ip.AsSlice()}
	if !p.raw {
		dst = &net.UDPAddr{IP: ip.AsSlice()}
	}
	if _, err := p.conn.WriteTo(b, dst); err != nil {
		return false
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.seen:
		return true
	case <-t.C:
		return false
	}
}

func hostAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPAddr:
		ip = v.IP
	case *net.UDPAddr:
		ip = v.IP
	}
	r, _ := netip.AddrFromSlice(ip.To4())
	return r
}
