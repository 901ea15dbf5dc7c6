package dhcp

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// TestAppendRecordIsJSON holds the journal's hand-written encoder to what
// encoding/json makes of a Lease (the format the journal always had), and
// to what replayJournal reads back.
func TestAppendRecordIsJSON(t *testing.T) {
	mac := phone.MAC{0x00, 0x04, 0x13, 0xa1, 0x1f, 0xa7}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		l    Lease
	}{
		{"bound", Lease{IP: netip.MustParseAddr("10.77.0.100"), MAC: mac, Expiry: exp, State: StateBound}},
		{"client id and hostname", Lease{IP: netip.MustParseAddr("10.78.1.2"), MAC: mac, ClientID: "01000413a11fa7",
			Hostname: "snomD785-a", Expiry: exp.Add(123456789 * time.Nanosecond), State: StateBound}},
		{"declined, no MAC", Lease{IP: netip.MustParseAddr("10.77.0.7"), Expiry: exp, State: StateDeclined}},
		{"escapes", Lease{IP: netip.MustParseAddr("10.77.0.8"), MAC: mac, Hostname: "a\"b\\c<d>&e\x01\x7f",
			Expiry: exp.In(time.FixedZone("x", 3600)), State: StateReleased}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRecord(t, tt.l)
		})
	}
}

func checkRecord(t *testing.T, l Lease) {
	t.Helper()
	got := appendRecord(nil, &l)
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(l); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("appendRecord = %s\nencoding/json = %s", got, want.Bytes())
	}
	m := map[netip.Addr]Lease{}
	if n, err := replayJournal(got, m); n != 1 || err != nil {
		t.Fatalf("replay: n=%d err=%v", n, err)
	}
	if r := m[l.IP]; r.MAC != l.MAC || r.ClientID != l.ClientID || r.Hostname != l.Hostname ||
		!r.Expiry.Equal(l.Expiry) || r.State != l.State {
		t.Errorf("replayed %+v, want %+v", r, l)
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add([]byte{10, 77, 0, 100}, []byte{0, 4, 0x13, 1, 2, 3}, "01ab", "snom", int64(1893456000), StateBound)
	f.Add([]byte{10, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 0}, "", "", int64(0), StateDeclined)
	f.Fuzz(func(t *testing.T, ip, mac []byte, clientID, hostname string, unix int64, state string) {
		a, ok := netip.AddrFromSlice(ip)
		m, okm := phone.FromHardwareAddr(mac)
		if !ok || !a.Is4() || !okm || unix < 0 || unix > 1<<37 {
			return
		}
		// Leases carry sanitized hostnames, hex client IDs and the state
		// constants; any text must still give valid JSON that reads back.
		checkRecord(t, Lease{IP: a, MAC: m, ClientID: sanitize(clientID), Hostname: sanitize(hostname),
			Expiry: time.Unix(unix, 0).UTC(), State: sanitize(state)})
	})
}

// TestReleaseInChunks: the ACKs of a large group commit leave in order,
// in sendmmsg batches of at most ackChunk, each exchange recorded, and a
// barrier handed off behind them returns only once they have left.
func TestReleaseInChunks(t *testing.T) {
	s, err := New(baseOptions(t.TempDir()), nil, inventory.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls []int
	var order []byte
	s.sendBatch = func(_ *sendScratch, msgs []outMsg) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, len(msgs))
		for _, m := range msgs {
			order = append(order, m.b[0])
		}
		return nil
	}
	s.startReleaser()
	s.writerOut = &outbox{}
	const n = 3*ackChunk + 5
	now := time.Now()
	for i := range n {
		// The same arrival time: no spreading, so nothing waits.
		s.writerOut.add(&exchange{wire: []byte{byte(i)}, now: now, rtype: dhcpv4.MessageTypeAck})
	}
	s.handOff(nil)
	done := make(chan struct{})
	s.handOff(done)
	<-done
	mu.Lock()
	if len(order) != n {
		t.Fatalf("%d ACKs sent, want %d", len(order), n)
	}
	for i, b := range order {
		if b != byte(i) {
			t.Fatalf("ACK %d sent as the %dth", b, i)
		}
	}
	for _, c := range calls {
		if c > ackChunk {
			t.Errorf("a sendmmsg of %d ACKs, more than %d: %v", c, ackChunk, calls)
		}
	}
	mu.Unlock()
	s.stopReleaser()
}
