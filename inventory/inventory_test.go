package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/snomprov/snomprov/phone"
)

func mac(t *testing.T, s string) phone.MAC {
	t.Helper()
	m, err := phone.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRecordPersistReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phones.json")
	s, err := Open(path, Options{MaxEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	m := mac(t, "000413A11FA7")
	ip := netip.MustParseAddr("10.0.0.50")
	for i := 0; i < 5; i++ {
		s.Record(Observation{MAC: m, Model: "snomD785", IP: ip, Event: Event{Step: StepGeneral, OK: true, Detail: "GET /snomD785.htm 200"}})
	}
	s.Record(Observation{MAC: m, Firmware: "10.1.33.33", Event: Event{Step: StepPhone, OK: false, Detail: "per-MAC file 404: MAC not in config"}})
	p, ok := s.Phone(m)
	if !ok || p.Model != "snomD785" || p.Firmware != "10.1.33.33" || p.IP != "10.0.0.50" || len(p.Events) != 3 {
		t.Fatalf("phone = %+v", p)
	}
	if st, why := p.State(time.Now(), 0); st != StateFailed || why != "phone: per-MAC file 404: MAC not in config" {
		t.Errorf("state = %s %q", st, why)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p2, ok := s2.Phone(m)
	if !ok || p2.Model != "snomD785" || len(p2.Events) != 3 || !p2.Steps[StepGeneral].OK {
		t.Fatalf("reloaded = %+v", p2)
	}
}

func TestBoundedPhones(t *testing.T) {
	s, _ := Open("", Options{MaxPhones: 2})
	base := time.Unix(1000, 0)
	for i, m := range []string{"000413000001", "000413000002", "000413000003"} {
		s.Record(Observation{MAC: mac(t, m), Event: Event{Time: base.Add(time.Duration(i) * time.Second), Step: StepDHCP, OK: true}})
	}
	if n := len(s.Phones()); n != 2 {
		t.Fatalf("phones = %d", n)
	}
	if _, ok := s.Phone(mac(t, "000413000001")); ok {
		t.Error("oldest phone should have been dropped")
	}
}

func TestState(t *testing.T) {
	now := time.Now()
	ok := func(st Step) Event { return Event{Time: now, Step: st, OK: true} }
	tests := []struct {
		events []Event
		want   State
	}{
		{nil, StateSeen},
		{[]Event{ok(StepDHCP)}, StateLeased},
		{[]Event{ok(StepDHCP), ok(StepPnP)}, StatePnPAnswered},
		{[]Event{ok(StepPnP), ok(StepGeneral), ok(StepPhone)}, StateSettingsFetched},
		{[]Event{ok(StepPhone), ok(StepFirmwareFile)}, StateFirmwareFetched},
		{[]Event{ok(StepFirmwareFile), ok(StepFirmwareImage)}, StateUpToDate},
		{[]Event{ok(StepGeneral), {Time: now, Step: StepPhone, OK: false, Detail: "404"}}, StateFailed},
	}
	for i, tt := range tests {
		s, _ := Open("", Options{})
		m := mac(t, "000413000001")
		s.Record(Observation{MAC: m})
		for _, e := range tt.events {
			s.Record(Observation{MAC: m, Event: e})
		}
		p, _ := s.Phone(m)
		if got, _ := p.State(now, 0); got != tt.want {
			t.Errorf("%d: state = %s, want %s", i, got, tt.want)
		}
	}
	s, _ := Open("", Options{})
	m := mac(t, "000413000001")
	s.Record(Observation{MAC: m, Event: Event{Time: now.Add(-2 * time.Hour), Step: StepDHCP, OK: true}})
	p, _ := s.Phone(m)
	if got, _ := p.State(now, time.Hour); got != StateStale {
		t.Errorf("state = %s, want stale", got)
	}
}

func TestStateFirmwareTarget(t *testing.T) {
	now := time.Now()
	m := mac(t, "000413000001")
	settings := Observation{MAC: m, Event: Event{Time: now, Step: StepPhone, OK: true}}
	fw404 := Observation{MAC: m, Event: Event{Time: now, Step: StepFirmwareFile, Kind: "404", OK: false, Detail: "no firmware configured"}}
	tests := []struct {
		name     string
		firmware string
		target   string
		extra    []Observation
		want     State
	}{
		{"unknown target", "10.1.33.33", "", nil, StateSettingsFetched},
		{"runs the target", "10.1.73.4", "10.1.73.4", nil, StateUpToDate},
		{"runs another version", "10.1.33.33", "10.1.73.4", nil, StateSettingsFetched},
		{"unmanaged model", "10.1.33.33", FirmwareUnmanaged, nil, StateUpToDate},
		{"unmanaged model, fallback 404s are expected", "10.1.33.33", FirmwareUnmanaged, []Observation{fw404}, StateUpToDate},
		{"managed model, firmware file 404 fails", "10.1.33.33", "10.1.73.4", []Observation{fw404}, StateFailed},
	}
	for _, tt := range tests {
		s, _ := Open("", Options{})
		o := settings
		o.Firmware, o.FirmwareTarget = tt.firmware, tt.target
		s.Record(o)
		for _, e := range tt.extra {
			s.Record(e)
		}
		p, _ := s.Phone(m)
		if got, why := p.State(now, 0); got != tt.want {
			t.Errorf("%s: state = %s (%s), want %s", tt.name, got, why, tt.want)
		}
	}
}

func TestEvictionKeepsRecentPhones(t *testing.T) {
	s, _ := Open("", Options{MaxPhones: 100})
	base := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ {
		var m phone.MAC
		m[0], m[4], m[5] = 0x02, byte(i>>8), byte(i)
		s.Record(Observation{MAC: m, Event: Event{Time: base.Add(time.Duration(i) * time.Second), Step: StepDHCP, OK: true}})
	}
	list := s.Phones()
	if len(list) > 100 || len(list) < 90 {
		t.Fatalf("phones = %d, want 90..100", len(list))
	}
	var newest phone.MAC
	newest[0], newest[4], newest[5] = 0x02, byte(999>>8), byte(999&0xff)
	if _, ok := s.Phone(newest); !ok {
		t.Error("the most recent phone was evicted")
	}
	for _, p := range list {
		if p.LastSeen.Before(base.Add(890 * time.Second)) {
			t.Errorf("old phone %s (seen %s) kept", p.MAC, p.LastSeen)
		}
	}
}

func BenchmarkRecordNewPhonesFullStore(b *testing.B) {
	s, _ := Open("", Options{MaxPhones: 5000})
	for i := 0; i < b.N; i++ {
		var m phone.MAC
		m[0], m[3], m[4], m[5] = 0x02, byte(i>>16), byte(i>>8), byte(i)
		s.Record(Observation{MAC: m, Event: Event{Step: StepDHCP, OK: true}})
	}
}

func BenchmarkFlushFullStore(b *testing.B) {
	s, _ := Open(filepath.Join(b.TempDir(), "phones.json"), Options{})
	for i := 0; i < 5000; i++ {
		var m phone.MAC
		m[0], m[4], m[5] = 0x02, byte(i>>8), byte(i)
		for k := 0; k < 5; k++ {
			s.Record(Observation{MAC: m, Model: "snomD785", Event: Event{Step: StepPnP, Kind: "NOTIFY-ACKED", OK: true, Detail: "NOTIFY acknowledged"}})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEventsKeepNewest: readers and the snapshot see exactly the newest
// MaxEvents events, oldest first, however many were recorded.
func TestEventsKeepNewest(t *testing.T) {
	m := mac(t, "000413A11FA7")
	for n := 1; n <= 20; n++ {
		path := filepath.Join(t.TempDir(), "phones.json")
		s, err := Open(path, Options{MaxEvents: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			s.Record(Observation{MAC: m, Event: Event{Step: StepGeneral, OK: true, Detail: strconv.Itoa(i)}})
		}
		var want []string
		for i := max(0, n-3); i < n; i++ {
			want = append(want, strconv.Itoa(i))
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var snap snapshot
		if err := json.Unmarshal(b, &snap); err != nil || len(snap.Phones) != 1 || len(snap.Phones[0].Events) != len(want) {
			t.Errorf("%d recorded: the snapshot file holds %s", n, b)
		}
		s2, err := Open(path, Options{MaxEvents: 3})
		if err != nil {
			t.Fatal(err)
		}
		for name, st := range map[string]*Store{"live": s, "reloaded": s2} {
			p, _ := st.Phone(m)
			var got []string
			for _, e := range p.Events {
				got = append(got, e.Detail)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%d recorded, %s: events %v, want %v", n, name, got, want)
			}
			if all := st.Phones(); len(all) != 1 || len(all[0].Events) != len(want) {
				t.Errorf("%d recorded, %s: Phones() has %d events", n, name, len(all[0].Events))
			}
		}
	}
}

// TestIPFollowsPhone: each event keeps the address it came from, and the
// phone shows the latest.
func TestIPFollowsPhone(t *testing.T) {
	s, _ := Open("", Options{})
	m := mac(t, "000413A11FA7")
	for _, ip := range []string{"10.0.0.5", "10.0.0.5", "10.0.0.6", "::ffff:10.0.0.7"} {
		s.Record(Observation{MAC: m, IP: netip.MustParseAddr(ip), Event: Event{Step: StepGeneral, OK: true}})
	}
	s.Record(Observation{MAC: m, Event: Event{Step: StepPnP, OK: true, IP: "10.0.0.9"}})
	p, _ := s.Phone(m)
	var got []string
	for _, e := range p.Events {
		got = append(got, e.IP)
	}
	if want := []string{"10.0.0.5", "10.0.0.5", "10.0.0.6", "::ffff:10.0.0.7", "10.0.0.9"}; !slices.Equal(got, want) || p.IP != "::ffff:10.0.0.7" {
		t.Errorf("phone IP %q, event IPs %v; want ::ffff:10.0.0.7 and %v", p.IP, got, want)
	}
}

// TestCountStates agrees with deriving each phone's state from Phones().
func TestCountStates(t *testing.T) {
	s, _ := Open("", Options{MaxEvents: 3})
	now := time.Now()
	steps := []struct {
		mac  string
		step Step
		ok   bool
	}{
		{"000413000001", StepDHCP, true}, {"000413000001", StepPnP, true},
		{"000413000002", StepGeneral, true}, {"000413000002", StepPhone, false},
		{"000413000003", StepPnP, true},
		// More events than MaxEvents: the state comes from the newest.
		{"000413000004", StepPhone, false}, {"000413000004", StepDHCP, true}, {"000413000004", StepPnP, true},
		{"000413000004", StepGeneral, true}, {"000413000004", StepPhone, true},
	}
	for _, st := range steps {
		s.Record(Observation{MAC: mac(t, st.mac), Event: Event{Time: now, Step: st.step, OK: st.ok}})
	}
	want := map[State]int{}
	for _, p := range s.Phones() {
		st, _ := p.State(now, time.Hour)
		want[st]++
	}
	got := s.CountStates(now, time.Hour)
	if len(got) != len(want) {
		t.Fatalf("CountStates = %v, want %v", got, want)
	}
	for st, n := range want {
		if got[st] != n {
			t.Errorf("CountStates = %v, want %v", got, want)
		}
	}
}

// blockingWriter blocks its second Write (the first phone, after the
// snapshot's header) until release is closed, like a snapshot write stuck
// on a slow SD card.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	writes  int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.writes++; w.writes == 2 {
		close(w.entered)
		<-w.release
	}
	return len(p), nil
}

// A snapshot writer that blocks (a slow disk) must not block Record: the
// flusher holds a copy, not the store's lock, while it writes.
func TestSlowDiskDoesNotBlockRecord(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "phones.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// More phones than one chunk, so the writer blocks between chunks too.
	for i := 0; i < 2*flushChunk+1; i++ {
		s.Record(Observation{MAC: mac(t, fmt.Sprintf("000413%06X", i)), Event: Event{Step: StepDHCP, OK: true}})
	}
	bw := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	var out bytes.Buffer
	s.writeFile = func(_ string, _ os.FileMode, write func(io.Writer) error) error {
		return write(io.MultiWriter(bw, &out))
	}
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush() }()
	<-bw.entered

	// The flusher is now stuck in Write. Every Record must still complete:
	// if one waited for the lock, the test would deadlock here and fail at
	// the test timeout instead.
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for i := 0; i < 2*flushChunk+1; i++ {
			s.Record(Observation{MAC: mac(t, fmt.Sprintf("000413%06X", i)), Event: Event{Step: StepPnP, OK: true}})
		}
		s.Record(Observation{MAC: mac(t, "0004130FFFFF"), Event: Event{Step: StepDHCP, OK: true}})
		_ = s.Phones()
	}()
	select {
	case <-recorded:
	case err := <-flushed:
		t.Fatalf("Flush returned (%v) while its writer was blocked", err)
	}
	close(bw.release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	var snap snapshot
	if err := json.Unmarshal(out.Bytes(), &snap); err != nil {
		t.Fatalf("snapshot written while phones changed is not valid JSON: %v", err)
	}
	if len(snap.Phones) < 2*flushChunk+1 {
		t.Errorf("snapshot holds %d phones, want at least %d", len(snap.Phones), 2*flushChunk+1)
	}
	// What was recorded during the blocked write makes the store dirty again.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestStatesAndKindsFromText(t *testing.T) {
	for _, st := range States {
		var got State
		if err := got.UnmarshalText([]byte(st)); err != nil || got != st {
			t.Errorf("state %q: %q, %v", st, got, err)
		}
	}
	if len(States) != len(BootStates)+3 || States[len(BootStates)] != StateFailed || States[len(States)-1] != StateFirmwareLoop {
		t.Errorf("States = %v", States)
	}
	if _, err := ParseState("broken"); err == nil {
		t.Error(`ParseState("broken") succeeded`)
	}
	kinds := []struct {
		text string
		ok   bool
	}{
		{"", true}, {"ACK", true}, {"NOTIFY-TIMEOUT", true}, {"404", true}, {"200", true},
		{"ack", false}, {"99", false}, {"0404", false}, {"700", false}, {"NOTIFY", false},
	}
	for _, tc := range kinds {
		var k Kind
		err := k.UnmarshalText([]byte(tc.text))
		if (err == nil) != tc.ok || (tc.ok && string(k) != tc.text) {
			t.Errorf("kind %q: %q, %v; want ok=%v", tc.text, k, err, tc.ok)
		}
	}
	if HTTPKind(404) != "404" || HTTPKind(999) != "999" {
		t.Errorf("HTTPKind: %q %q", HTTPKind(404), HTTPKind(999))
	}
	if n := testing.AllocsPerRun(100, func() { _ = HTTPKind(304) }); n != 0 {
		t.Errorf("HTTPKind allocates %v times", n)
	}
}

// A snapshot with an event kind no version wrote is refused, not
// silently kept.
func TestLoadRejectsUnknownKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phones.json")
	bad := `{"version":1,"phones":[{"mac":"000413A11FA7","steps":{},"events":[{"step":"dhcp","kind":"BOGUS","ok":true}]}]}`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("Load accepted an unknown event kind")
	}
}

// FuzzLoad: any snapshot file is loaded or refused with an error; a loaded
// one holds only known event kinds.
func FuzzLoad(f *testing.F) {
	f.Add(`{"version":1,"phones":[{"mac":"000413A11FA7","steps":{},"events":[{"step":"dhcp","kind":"ACK","ok":true}]}]}`)
	f.Add(`{"version":1,"phones":[{"mac":"zz","events":[{"kind":"404"}]}]}`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		path := filepath.Join(dir, "phones.json")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		list, err := Load(path)
		if err != nil {
			return
		}
		for _, p := range list {
			for _, e := range p.Events {
				if _, err := ParseKind(string(e.Kind)); err != nil {
					t.Fatalf("loaded an unknown kind %q", e.Kind)
				}
			}
		}
	})
}

// TestActionIsNotSeen: an action event is in the timeline but does not
// make the phone seen again, so a stale phone stays stale after a resync
// nobody answered.
func TestActionIsNotSeen(t *testing.T) {
	s, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := mac(t, "000413A11FA7")
	seen := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s.Record(Observation{MAC: m, Event: Event{Time: seen, Step: StepGeneral, OK: true}})
	s.Record(Observation{MAC: m, Event: Event{Time: seen.Add(48 * time.Hour), Step: StepAction, Kind: KindResync, Detail: "no answer"}})
	p, _ := s.Phone(m)
	if !p.LastSeen.Equal(seen) || len(p.Events) != 2 || p.Events[1].Kind != KindResync {
		t.Fatalf("phone = %+v", p)
	}
	if st, _ := p.State(seen.Add(49*time.Hour), 24*time.Hour); st != StateStale {
		t.Errorf("state after an unanswered resync = %s, want stale", st)
	}
}
