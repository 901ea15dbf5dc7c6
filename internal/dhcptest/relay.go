// Package dhcptest holds DHCP test clients shared by the dhcp package's
// tests and the end-to-end tests of the real binary.
package dhcptest

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/internal/lantest"
)

// Relay plays a DHCP relay agent for many simulated clients: it sends their
// DISCOVERs with giaddr set, answers every OFFER with a REQUEST, and records
// the ACKs and NAKs the server sends back to the relay port.
type Relay struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	gi     net.IP

	mu    sync.Mutex
	acked map[string]netip.Addr // client MAC -> ACKed address
	naks  int
}

// NewRelay opens the relay's socket on gi:67 inside h and starts reading.
// The socket is opened inside h.Do, so it stays on the simulated LAN.
func NewRelay(t testing.TB, h *lantest.Host, gi, server netip.Addr) *Relay {
	t.Helper()
	r := &Relay{server: &net.UDPAddr{IP: server.AsSlice(), Port: 67}, gi: gi.AsSlice(), acked: map[string]netip.Addr{}}
	if err := h.Do(func() error {
		var err error
		r.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: r.gi, Port: 67})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	go r.read()
	return r
}

func (r *Relay) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		switch m.MessageType() {
		case dhcpv4.MessageTypeOffer:
			req, _ := dhcpv4.NewRequestFromOffer(m, dhcpv4.WithGatewayIP(r.gi))
			r.conn.WriteTo(req.ToBytes(), r.server)
		case dhcpv4.MessageTypeAck:
			ip, _ := netip.AddrFromSlice(m.YourIPAddr.To4())
			r.mu.Lock()
			r.acked[m.ClientHWAddr.String()] = ip
			r.mu.Unlock()
		case dhcpv4.MessageTypeNak:
			r.mu.Lock()
			r.naks++
			r.mu.Unlock()
		}
	}
}

// Storm sends DISCOVERs for n clients with the MACs 00:04:13:tag:hi:lo, in
// bursts of 50, until all are sent or stop is set.
func (r *Relay) Storm(n int, tag byte, stop *atomic.Bool) {
	for i := 0; i < n && !stop.Load(); i++ {
		d, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0, 4, 0x13, tag, byte(i >> 8), byte(i)}, dhcpv4.WithGatewayIP(r.gi))
		if _, err := r.conn.WriteTo(d.ToBytes(), r.server); err != nil {
			return
		}
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Acked returns a copy of the ACKs so far, client MAC -> address.
func (r *Relay) Acked() map[string]netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]netip.Addr, len(r.acked))
	for k, v := range r.acked {
		m[k] = v
	}
	return m
}

// NAKs counts the NAKs so far.
func (r *Relay) NAKs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.naks
}

// Reset forgets the ACKs and NAKs seen so far.
func (r *Relay) Reset() {
	r.mu.Lock()
	r.acked, r.naks = map[string]netip.Addr{}, 0
	r.mu.Unlock()
}

// Renew sends a RENEWING-state REQUEST (ciaddr set) for every lease until
// each client has an ACK or rounds are used up. Like real clients it
// retransmits: a burst of hundreds of replies can overflow the relay
// socket's receive buffer.
func (r *Relay) Renew(leases map[string]netip.Addr, rounds int) {
	for round := 0; round < rounds; round++ {
		got := r.Acked()
		sent := 0
		for hw, ip := range leases {
			if _, ok := got[hw]; ok {
				continue
			}
			m, err := net.ParseMAC(hw)
			if err != nil {
				continue
			}
			req, _ := dhcpv4.New(dhcpv4.WithHwAddr(m), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithClientIP(ip.AsSlice()), dhcpv4.WithGatewayIP(r.gi))
			r.conn.WriteTo(req.ToBytes(), r.server)
			if sent++; sent%50 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if sent == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
