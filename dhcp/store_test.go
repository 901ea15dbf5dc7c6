package dhcp

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
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

// journalLeases replays what dir holds, as the next start would.
func journalLeases(t *testing.T, dir string) map[netip.Addr]Lease {
	t.Helper()
	m, _, err := loadLeaseFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testLease(i int) Lease {
	return Lease{IP: netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}), MAC: phone.MAC{0, 4, 0x13, 0, byte(i >> 8), byte(i)},
		Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), State: StateBound}
}

// commitAll commits the leases one group at a time and waits for each.
func commitAll(t *testing.T, s *store, leases []Lease) {
	t.Helper()
	for _, l := range leases {
		done := make(chan error, 1)
		s.commit(l, func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// The journal is zeroed ahead and written in place: its size is whole
// extents, records that cross an extent grow it, and every committed lease
// reads back, before and after a restart folds the journal into the
// snapshot.
func TestJournalWrittenInPlace(t *testing.T) {
	defer func(e int64) { journalExtent = e }(journalExtent)
	journalExtent = 1024 // a few records per extent
	dir := t.TempDir()
	s, _, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.start(func() []Lease { return nil }, nil, nil)
	var leases []Lease
	for i := 1; i <= 40; i++ {
		leases = append(leases, testLease(i))
	}
	commitAll(t, s, leases)
	fi, err := os.Stat(filepath.Join(dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%journalExtent != 0 || fi.Size() < s.off || fi.Size() == journalExtent {
		t.Fatalf("journal is %d bytes for %d bytes of records (extent %d)", fi.Size(), s.off, journalExtent)
	}
	if m := journalLeases(t, dir); len(m) != len(leases) {
		t.Fatalf("read back %d of %d leases while running", len(m), len(leases))
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s2, m, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.journal.Close()
	for _, l := range leases {
		if got := m[l.IP]; got.MAC != l.MAC || got.State != StateBound {
			t.Fatalf("after a restart %v is %+v", l.IP, got)
		}
	}
}

// A write that failed may have left part of its records in the file; the
// next group covers them, so the journal reads back with neither those
// records nor an error, and keeps everything committed since.
func TestJournalCoversAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.start(func() []Lease { return nil }, nil, nil)
	commitAll(t, s, []Lease{testLease(1)})
	// What a failed group of three leaves: its records, the last torn,
	// where the next group will write.
	var junk []byte
	for i := 100; i < 103; i++ {
		l := testLease(i)
		junk = appendRecord(junk, &l)
	}
	junk = junk[:len(junk)-20]
	s.barrier()
	if _, err := s.journal.WriteAt(junk, s.off); err != nil {
		t.Fatal(err)
	}
	s.dirty = s.off + int64(len(junk))
	commitAll(t, s, []Lease{testLease(2), testLease(3)})
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	m := journalLeases(t, dir)
	if len(m) != 3 {
		t.Fatalf("read back %d leases, want 3: %v", len(m), m)
	}
	for i := 1; i <= 3; i++ {
		if _, ok := m[testLease(i).IP]; !ok {
			t.Fatalf("lease %d lost", i)
		}
	}
}

// TestGroupWaitsOnlyWhenBusy holds the writer to waiting groupWait only
// while requests come faster than one at a time, and to putting what
// arrives during the wait into the same group.
func TestGroupWaitsOnlyWhenBusy(t *testing.T) {
	s, _, err := openStore(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	records := make(chan int, 16) // the journal's record count at each ack
	ack := func(err error) {
		if err != nil {
			t.Error(err)
		}
		records <- s.records
	}
	waits := 0
	s.wait = func(d time.Duration) {
		if d != groupWait {
			t.Errorf("waited %v, want %v", d, groupWait)
		}
		waits++
		if waits == 1 { // what arrives while the first group gathers
			for i := range 3 {
				s.queue <- commitReq{lease: testLease(10 + i), after: ack}
			}
		}
	}
	expect := func(what string, acks, wantRecords, wantWaits int) {
		t.Helper()
		for range acks {
			if got := <-records; got != wantRecords {
				t.Fatalf("%s: acked at %d records, want %d (one group)", what, got, wantRecords)
			}
		}
		if waits != wantWaits {
			t.Fatalf("%s: %d waits, want %d", what, waits, wantWaits)
		}
	}

	s.queue <- commitReq{lease: testLease(1), after: ack}
	s.queue <- commitReq{lease: testLease(2), after: ack}
	s.start(func() []Lease { return nil }, nil, nil)
	expect("two queued", 5, 5, 1)
	s.commit(testLease(3), ack)
	expect("first after a busy group", 1, 6, 2)
	s.commit(testLease(4), ack)
	expect("lone request", 1, 7, 2)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}
