package simulate

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/phone"
)

// fakeRaw is a PacketConn whose reads are fed by the test and whose writes
// are recorded.
type fakeRaw struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu     sync.Mutex
	writes [][]byte
}

func newFakeRaw() *fakeRaw {
	return &fakeRaw{in: make(chan []byte), closed: make(chan struct{})}
}

func (f *fakeRaw) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-f.in:
		return copy(b, p), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}, nil
	case <-f.closed:
		return 0, nil, net.ErrClosed
	}
}

func (f *fakeRaw) WriteTo(b []byte, _ net.Addr) (int, error) {
	f.mu.Lock()
	f.writes = append(f.writes, append([]byte(nil), b...))
	f.mu.Unlock()
	return len(b), nil
}

func (f *fakeRaw) Close() error                     { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeRaw) LocalAddr() net.Addr              { return &net.UDPAddr{Port: 68} }
func (f *fakeRaw) SetDeadline(time.Time) error      { return nil }
func (f *fakeRaw) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeRaw) SetWriteDeadline(time.Time) error { return nil }

func dhcpMsg(t *testing.T, op dhcpv4.OpcodeType, mt dhcpv4.MessageType, xid byte, mac phone.MAC) []byte {
	t.Helper()
	m, err := dhcpv4.New(dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac[:]),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, xid}))
	if err != nil {
		t.Fatal(err)
	}
	m.OpCode = op
	return m.ToBytes()
}

func TestDHCPMuxDemultiplexes(t *testing.T) {
	macA := phone.MAC{0x00, 0x04, 0x13, 0, 0, 1}
	macB := phone.MAC{0x00, 0x04, 0x13, 0, 0, 2}
	macC := phone.MAC{0x00, 0x04, 0x13, 0, 0, 3} // sent nothing
	garbage := func(t *testing.T) []byte {
		b := dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 1, macA)
		b[bootpCookie] = 0 // not DHCP
		return b
	}
	tests := []struct {
		name   string
		packet func(t *testing.T) []byte
		want   string // phone that must get it; "" = dropped
	}{
		{"offer to A", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 1, macA)
		}, "A"},
		{"ack to B", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeAck, 2, macB)
		}, "B"},
		{"A's xid with B's chaddr", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 1, macB)
		}, ""},
		{"unknown xid", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 9, macA)
		}, ""},
		{"phone that sent nothing", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 1, macC)
		}, ""},
		{"another client's request echoed", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootRequest, dhcpv4.MessageTypeRequest, 1, macA)
		}, ""},
		{"short", func(t *testing.T) []byte {
			return dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 1, macA)[:bootpMinLen-1]
		}, ""},
		{"empty", func(*testing.T) []byte { return nil }, ""},
		{"no magic cookie", garbage, ""},
	}

	raw := newFakeRaw()
	mux := newDHCPMuxConn(raw)
	defer mux.Close()
	conns := map[string]*muxConn{"A": mux.conn(macA), "B": mux.conn(macB), "C": mux.conn(macC)}
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	// A and B each send their DISCOVER/REQUEST: that registers the xid.
	if _, err := conns["A"].WriteTo(dhcpMsg(t, dhcpv4.OpcodeBootRequest, dhcpv4.MessageTypeDiscover, 1, macA), dst); err != nil {
		t.Fatal(err)
	}
	if _, err := conns["B"].WriteTo(dhcpMsg(t, dhcpv4.OpcodeBootRequest, dhcpv4.MessageTypeRequest, 2, macB), dst); err != nil {
		t.Fatal(err)
	}
	if n := len(raw.writes); n != 2 {
		t.Fatalf("%d packets reached the shared socket, want 2", n)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.packet(t)
			if got := mux.dispatch(p, nil); got != (tt.want != "") {
				t.Errorf("dispatch = %v, want delivered = %v", got, tt.want != "")
			}
			for name, c := range conns {
				select {
				case got := <-c.in:
					if name != tt.want {
						t.Errorf("phone %s got a packet meant for %q", name, tt.want)
					} else if string(got.data) != string(p) {
						t.Errorf("phone %s got altered bytes", name)
					}
				default:
					if name == tt.want {
						t.Errorf("phone %s did not get its packet", name)
					}
				}
			}
		})
	}
}

// TestDHCPMuxReadPath drives packets through the reader goroutine and the
// phone's ReadFrom, and checks that Close unregisters the phone.
func TestDHCPMuxReadPath(t *testing.T) {
	mac := phone.MAC{0x00, 0x04, 0x13, 0, 0, 7}
	raw := newFakeRaw()
	mux := newDHCPMuxConn(raw)
	c := mux.conn(mac)
	if _, err := c.WriteTo(dhcpMsg(t, dhcpv4.OpcodeBootRequest, dhcpv4.MessageTypeDiscover, 7, mac), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
		t.Fatal(err)
	}
	offer := dhcpMsg(t, dhcpv4.OpcodeBootReply, dhcpv4.MessageTypeOffer, 7, mac)
	raw.in <- []byte("garbage")
	raw.in <- offer

	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != string(offer) || from.String() != "10.77.0.1:67" {
		t.Errorf("ReadFrom = %d bytes from %v, want the offer from 10.77.0.1:67", n, from)
	}

	// Nothing else queued: a short deadline expires.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, _, err := c.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadFrom on an empty queue = %v, want deadline exceeded", err)
	}

	_ = c.Close()
	if mux.dispatch(offer, nil) {
		t.Error("a closed phone still received a packet")
	}
	if _, _, err := c.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close = %v, want net.ErrClosed", err)
	}
	if err := mux.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mux.readDone:
	default:
		t.Error("reader still running after Close")
	}
}

func FuzzReplyKey(f *testing.F) {
	m, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	m.OpCode = dhcpv4.OpcodeBootReply
	f.Add(m.ToBytes())
	f.Add([]byte{2, 1, 6})
	f.Fuzz(func(t *testing.T, p []byte) {
		k, ok := replyKey(p)
		if !ok {
			return
		}
		if len(p) < bootpMinLen || p[0] != bootReply {
			t.Fatalf("accepted a packet that is no BOOTREPLY: % x", p)
		}
		if [4]byte(p[4:8]) != k.xid || phone.MAC(p[28:34]) != k.chaddr {
			t.Fatalf("key %v does not match the packet", k)
		}
	})
}
