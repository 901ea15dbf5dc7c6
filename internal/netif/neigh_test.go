package netif

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
)

const arpSample = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.23        0x1         0x2         00:04:13:a1:1f:a7     *        eth0
10.0.0.24        0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.25        0x1         0x6         00:04:13:b2:2f:b8     *        eth0
10.0.0.26        0x1         0x2         00:04:13:c3:3f:c9     *        wlan0
garbage line
10.0.0.27        0x1         0x2         not-a-mac             *        eth0
`

func TestParseARP(t *testing.T) {
	got := parseARP(strings.NewReader(arpSample), "eth0")
	want := map[netip.Addr][6]byte{
		netip.MustParseAddr("10.0.0.23"): {0x00, 0x04, 0x13, 0xa1, 0x1f, 0xa7},
		netip.MustParseAddr("10.0.0.25"): {0x00, 0x04, 0x13, 0xb2, 0x2f, 0xb8}, // complete + permanent
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for ip, mac := range want {
		if got[ip] != mac {
			t.Errorf("%s: got %x, want %x", ip, got[ip], mac)
		}
	}
}

// TestNeighborsRefresh: a found address is trusted for maxAge; a missing
// one makes the table be read again unless it was read since the request
// asked.
func TestNeighborsRefresh(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := 0
	table := arpSample
	n := &Neighbors{ifname: "eth0", maxAge: 5 * time.Second,
		now:  func() time.Time { return now },
		open: func() (io.ReadCloser, error) { reads++; return io.NopCloser(strings.NewReader(table)), nil }}
	a23, a40 := netip.MustParseAddr("10.0.0.23"), netip.MustParseAddr("10.0.0.40")
	steps := []struct {
		advance   time.Duration
		ip        netip.Addr
		ok        bool
		wantReads int
	}{
		{0, a23, true, 1},                                     // first use reads
		{time.Second, a23, true, 1},                           // found: cached
		{time.Millisecond, a40, false, 2},                     // missing: read again
		{time.Millisecond, a40, true, 3},                      // a new entry: found on the next read
		{0, a40, true, 3},                                     // cached
		{6 * time.Second, a23, true, 4},                       // older than maxAge
		{0, netip.MustParseAddr("::1"), false, 4},             // IPv6 is never in the ARP table
		{0, netip.MustParseAddr("::ffff:10.0.0.23"), true, 4}, // mapped IPv4 is
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if i == 3 {
			table += "10.0.0.40        0x1         0x2         00:04:13:00:00:40     *        eth0\n"
		}
		if _, ok := n.Lookup(s.ip); ok != s.ok || reads != s.wantReads {
			t.Errorf("step %d (%s): ok %v after %d reads, want %v after %d", i, s.ip, ok, reads, s.ok, s.wantReads)
		}
	}
}

// TestNeighborsOnSimulatedLAN: after a ping, the server's table has the
// client's real MAC.
func TestNeighborsOnSimulatedLAN(t *testing.T) {
	lan := lantest.New(t, "10.77.4.0/24")
	srv := lan.AddHost("srv", lantest.HostOptions{Addr: "10.77.4.1/24"})
	lan.AddHost("phone", lantest.HostOptions{Addr: "10.77.4.23/24", MAC: "00:04:13:a1:1f:a7"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := srv.Run(ctx, "ping", "-c1", "-W2", "10.77.4.23"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	var mac [6]byte
	var ok bool
	if err := srv.Do(func() error { mac, ok = NewNeighbors("eth0").Lookup(netip.MustParseAddr("10.77.4.23")); return nil }); err != nil {
		t.Fatal(err)
	}
	if !ok || mac != [6]byte{0x00, 0x04, 0x13, 0xa1, 0x1f, 0xa7} {
		t.Errorf("lookup: %x %v, want 000413a11fa7", mac, ok)
	}
	var other bool
	srv.Do(func() error { _, other = NewNeighbors("eth1").Lookup(netip.MustParseAddr("10.77.4.23")); return nil })
	if other {
		t.Error("found on eth1, which does not exist")
	}
}
