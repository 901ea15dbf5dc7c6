package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

func scrape(t *testing.T, h http.Handler) *exposition {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, ContentType)
	}
	e, err := parseExposition(rec.Body.String())
	if err != nil {
		t.Fatalf("exposition rejected: %v\n%s", err, rec.Body.String())
	}
	return e
}

func TestExpositionEscapingAndOrder(t *testing.T) {
	reg := NewRegistry()
	c := reg.Counter("test_events_total", "Help with a \\ backslash\nand a line feed and \"quotes\".", "a", "b")
	tricky := []string{
		`plain`,
		`with "quotes"`,
		`back\slash`,
		"line\nfeed",
		`trailing\`,
		"bad utf8 \xff\xfe",
		"",
		"ünïcödé ☎",
	}
	for i, v := range tricky {
		c.Add(uint64(i+1), v, "x")
	}
	reg.GaugeFunc("test_gauge", "A gauge.", []string{"k"}, func() []Sample {
		return []Sample{
			{Values: []string{"inf"}, Value: float64(1) / zero()},
			{Values: []string{"neg"}, Value: -2.5},
			{Values: []string{"too", "many"}, Value: 9}, // dropped, not written malformed
		}
	})
	reg.GaugeFunc("a_first_gauge", "Sorts first.", nil, func() []Sample { return nil })

	e := scrape(t, reg)
	if want := []string{"a_first_gauge", "test_events_total", "test_gauge"}; strings.Join(e.order, ",") != strings.Join(want, ",") {
		t.Errorf("family order = %v, want %v", e.order, want)
	}
	if got := e.families["test_events_total"].help; got != "Help with a \\ backslash\nand a line feed and \"quotes\"." {
		t.Errorf("help round trip = %q", got)
	}
	for i, v := range tricky {
		want := strings.ToValidUTF8(v, "\uFFFD")
		got, ok := e.value("test_events_total", map[string]string{"a": want, "b": "x"})
		if !ok || got != float64(i+1) {
			t.Errorf("label %q: got %v (found %v), want %d", v, got, ok, i+1)
		}
	}
	if got, _ := e.value("test_gauge", map[string]string{"k": "inf"}); got <= 1e308 {
		t.Errorf("+Inf gauge = %v", got)
	}
	if got, _ := e.value("test_gauge", map[string]string{"k": "neg"}); got != -2.5 {
		t.Errorf("negative gauge = %v", got)
	}
	if n := len(e.families["test_gauge"].series); n != 2 {
		t.Errorf("test_gauge has %d series, want 2 (the malformed one dropped)", n)
	}
}

func zero() float64 { return 0 }

// The parser itself must reject what promtool rejects, or the tests above
// prove nothing.
func TestParserRejectsBadExpositions(t *testing.T) {
	cases := []struct{ name, text string }{
		{"no help", "# TYPE x_total counter\nx_total 1\n"},
		{"no type", "# HELP x_total h\nx_total 1\n"},
		{"counter without _total", "# HELP x h\n# TYPE x counter\nx 1\n"},
		{"gauge with _total", "# HELP x_total h\n# TYPE x_total gauge\nx_total 1\n"},
		{"camelCase", "# HELP fooBar h\n# TYPE fooBar gauge\nfooBar 1\n"},
		{"unescaped quote", "# HELP x h\n# TYPE x gauge\nx{a=\"b\"c\"} 1\n"},
		{"bad escape", "# HELP x h\n# TYPE x gauge\nx{a=\"\\t\"} 1\n"},
		{"duplicate series", "# HELP x h\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"},
		{"not contiguous", "# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1\n"},
		{"type after sample", "# HELP x h\nx 1\n# TYPE x gauge\n"},
		{"bad value", "# HELP x h\n# TYPE x gauge\nx one\n"},
		{"negative counter", "# HELP x_total h\n# TYPE x_total counter\nx_total -1\n"},
		{"no final newline", "# HELP x h\n# TYPE x gauge\nx 1"},
		{"reserved label", "# HELP x h\n# TYPE x gauge\nx{__name__=\"y\"} 1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseExposition(tc.text); err == nil {
				t.Errorf("accepted:\n%s", tc.text)
			}
		})
	}
	if _, err := parseExposition("# HELP x h \"q\" \\\\\n# TYPE x gauge\nx{a=\"\\\"\\n\\\\\"} 1 1700000000000\n"); err != nil {
		t.Errorf("valid exposition rejected: %v", err)
	}
}

func TestRegisterRejectsProgrammingErrors(t *testing.T) {
	cases := []struct {
		name string
		fn   func(r *Registry)
	}{
		{"bad name", func(r *Registry) { r.Counter("bad-name_total", "h") }},
		{"empty help", func(r *Registry) { r.Counter("x_total", " ") }},
		{"bad label", func(r *Registry) { r.Counter("x_total", "h", "bad-label") }},
		{"reserved label", func(r *Registry) { r.Counter("x_total", "h", "__x") }},
		{"repeated label", func(r *Registry) { r.Counter("x_total", "h", "a", "a") }},
		{"duplicate family", func(r *Registry) { r.Counter("x_total", "h"); r.GaugeFunc("x_total", "h", nil, nil) }},
		{"wrong label count", func(r *Registry) { r.Counter("x_total", "h", "a").Inc() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			tc.fn(NewRegistry())
		})
	}
}

func TestCounterSeriesAreBounded(t *testing.T) {
	reg := NewRegistry()
	c := reg.Counter("x_total", "h", "kind")
	for i := 0; i < MaxSeries+50; i++ {
		c.Inc(fmt.Sprintf("k%d", i))
	}
	e := scrape(t, reg)
	if n := len(e.families["x_total"].series); n != MaxSeries+1 {
		t.Errorf("%d series, want %d (the cap plus one 'other')", n, MaxSeries+1)
	}
	if got, _ := e.value("x_total", map[string]string{"kind": "other"}); got != 50 {
		t.Errorf("other = %v, want 50", got)
	}
	// Existing series keep counting after the cap is reached.
	c.Inc("k0")
	if got := c.Value("k0"); got != 2 {
		t.Errorf("k0 = %d, want 2", got)
	}
}

type collect struct {
	mu  sync.Mutex
	obs []inventory.Observation
}

func (c *collect) Record(o inventory.Observation) {
	c.mu.Lock()
	c.obs = append(c.obs, o)
	c.mu.Unlock()
}

func TestRecorderCountsByStepAndKind(t *testing.T) {
	mac := phone.MAC{0x00, 0x04, 0x13, 0xa1, 0x1f, 0xa7}
	obs := func(m phone.MAC, step inventory.Step, kind inventory.Kind) inventory.Observation {
		return inventory.Observation{MAC: m, Event: inventory.Event{Step: step, Kind: kind}}
	}
	in := []inventory.Observation{
		obs(mac, inventory.StepDHCP, "DISCOVER"),
		obs(mac, inventory.StepDHCP, "OFFER"),
		obs(mac, inventory.StepDHCP, "ACK"),
		obs(mac, inventory.StepDHCP, "ACK"),
		obs(mac, inventory.StepPnP, "SUBSCRIBE"),
		obs(mac, inventory.StepPnP, "NOTIFY-ACKED"),
		obs(mac, inventory.StepGeneral, "200"),
		obs(mac, inventory.StepPhone, "404"),
		obs(phone.MAC{}, inventory.StepPhone, "404"), // no MAC: counted, not stored
		obs(phone.MAC{}, inventory.StepFile, "404"),
		obs(mac, inventory.StepFirmwareFile, "200"),
		obs(mac, inventory.StepFirmwareImage, "200"),
		obs(mac, inventory.StepFirmwareImage, ""),
		obs(mac, "", "note"),
		obs(mac, "future-step", "X"),
	}
	next := &collect{}
	r := NewRecorder(next)
	for _, o := range in {
		r.Record(o)
	}
	if len(next.obs) != len(in) {
		t.Fatalf("next got %d observations, want %d", len(next.obs), len(in))
	}
	e := scrape(t, r)
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"snomprov_dhcp_messages_total", map[string]string{"type": "DISCOVER"}, 1},
		{"snomprov_dhcp_messages_total", map[string]string{"type": "OFFER"}, 1},
		{"snomprov_dhcp_messages_total", map[string]string{"type": "ACK"}, 2},
		{"snomprov_pnp_total", map[string]string{"outcome": "SUBSCRIBE"}, 1},
		{"snomprov_pnp_total", map[string]string{"outcome": "NOTIFY-ACKED"}, 1},
		{"snomprov_http_requests_total", map[string]string{"kind": "general", "status": "200"}, 1},
		{"snomprov_http_requests_total", map[string]string{"kind": "phone", "status": "404"}, 2},
		{"snomprov_http_requests_total", map[string]string{"kind": "file", "status": "404"}, 1},
		{"snomprov_http_requests_total", map[string]string{"kind": "firmware-file", "status": "200"}, 1},
		{"snomprov_http_requests_total", map[string]string{"kind": "firmware-image", "status": "200"}, 1},
		{"snomprov_http_requests_total", map[string]string{"kind": "firmware-image", "status": "unknown"}, 1},
		{"snomprov_events_total", map[string]string{"step": "none", "kind": "note"}, 1},
		{"snomprov_events_total", map[string]string{"step": "future-step", "kind": "X"}, 1},
	}
	for _, w := range want {
		got, ok := e.value(w.name, w.labels)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if n := len(e.families["snomprov_http_requests_total"].series); n != 6 {
		t.Errorf("http series = %d, want 6", n)
	}
}

func TestRecorderNilNextAndConcurrency(t *testing.T) {
	r := NewRecorder(nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				r.Record(inventory.Observation{Event: inventory.Event{Step: inventory.StepDHCP, Kind: "ACK"}})
			}
		}()
	}
	// Scrapes race with the counting.
	for i := 0; i < 10; i++ {
		scrape(t, r)
	}
	wg.Wait()
	if got, _ := scrape(t, r).value("snomprov_dhcp_messages_total", map[string]string{"type": "ACK"}); got != 8000 {
		t.Errorf("ACK = %v, want 8000", got)
	}
}

func TestGauges(t *testing.T) {
	store, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mac := func(b byte) phone.MAC { return phone.MAC{0x00, 0x04, 0x13, 0, 0, b} }
	ev := func(m phone.MAC, ago time.Duration, step inventory.Step, ok bool) {
		store.Record(inventory.Observation{MAC: m, IP: netip.MustParseAddr("10.0.0.5"),
			Event: inventory.Event{Time: now.Add(-ago), Step: step, Kind: "x", OK: ok}})
	}
	ev(mac(1), time.Minute, inventory.StepDHCP, true)
	ev(mac(2), time.Minute, inventory.StepDHCP, true)
	ev(mac(2), time.Minute, inventory.StepPhone, false) // failed
	ev(mac(3), 48*time.Hour, inventory.StepDHCP, true)  // stale
	for _, st := range inventory.Steps {
		ev(mac(4), time.Minute, st, true) // up to date
	}
	ev(mac(5), time.Minute, inventory.StepPnP, true)

	r := NewRecorder(store)
	// Counted, and the store ignores it.
	r.Record(inventory.Observation{Event: inventory.Event{Step: inventory.StepPhone, Kind: "404"}})
	stale := 24 * time.Hour
	RegisterPhones(r.Registry(), store, func() time.Duration { return stale }, func() time.Time { return now })
	used := 3
	RegisterPool(r.Registry(), func() []PoolUsage {
		return []PoolUsage{{Subnet: "10.77.0.0/24", Used: used, Size: 100}, {Subnet: "10.20.0.0/24", Used: 5, Size: 50}}
	})
	RegisterBuildInfo(r.Registry(), "1.2.3")
	RegisterStart(r.Registry(), now)
	shed := uint64(4)
	RegisterPnPShed(r.Registry(), func() uint64 { return shed })
	RegisterDHCPNoSubnet(r.Registry(), func() uint64 { return 7 })
	RegisterDHCPNotServed(r.Registry(), func() uint64 { return 9 })

	e := scrape(t, r)
	if got, _ := e.value("snomprov_dhcp_no_subnet_total", map[string]string{}); got != 7 {
		t.Errorf("no_subnet = %v, want 7", got)
	}
	if got, _ := e.value("snomprov_dhcp_not_served_total", map[string]string{}); got != 9 {
		t.Errorf("not_served = %v, want 9", got)
	}
	if f := e.families["snomprov_pnp_notify_shed_total"]; f == nil || f.typ != "counter" {
		t.Errorf("shed family = %+v, want a counter", f)
	}
	if got, _ := e.value("snomprov_pnp_notify_shed_total", map[string]string{}); got != 4 {
		t.Errorf("shed = %v, want 4", got)
	}
	wantStates := map[string]float64{"leased": 1, "failed": 1, "stale": 1, "up-to-date": 1, "pnp-answered": 1,
		"seen": 0, "settings-fetched": 0, "firmware-fetched": 0}
	for st, n := range wantStates {
		if got, ok := e.value("snomprov_phones", map[string]string{"state": st}); !ok || got != n {
			t.Errorf("phones{state=%q} = %v (present %v), want %v", st, got, ok, n)
		}
	}
	for _, tt := range []struct {
		name, subnet string
		want         float64
	}{
		{"snomprov_dhcp_pool_used", "10.77.0.0/24", 3},
		{"snomprov_dhcp_pool_size", "10.77.0.0/24", 100},
		{"snomprov_dhcp_pool_used", "10.20.0.0/24", 5},
		{"snomprov_dhcp_pool_size", "10.20.0.0/24", 50},
	} {
		if got, ok := e.value(tt.name, map[string]string{"subnet": tt.subnet}); !ok || got != tt.want {
			t.Errorf("%s{subnet=%q} = %v (present %v), want %v", tt.name, tt.subnet, got, ok, tt.want)
		}
	}
	if f := e.families["snomprov_dhcp_pool_used"]; f == nil || f.typ != "gauge" || len(f.series) != 2 {
		t.Errorf("pool used family = %+v, want a gauge with a series per subnet", f)
	}
	if f := e.families["snomprov_build_info"]; f == nil || len(f.series) != 1 || f.series[0].labels["version"] != "1.2.3" {
		t.Errorf("build info = %+v", f)
	}
	if got, _ := e.value("snomprov_start_time_seconds", map[string]string{}); got != float64(now.Unix()) {
		t.Errorf("start time = %v", got)
	}
	if got, _ := e.value("snomprov_http_requests_total", map[string]string{"kind": "phone", "status": "404"}); got != 1 {
		t.Errorf("zero-MAC 404 counted %v times, want 1", got)
	}
	if n := len(store.Phones()); n != 5 {
		t.Errorf("store has %d phones, want 5", n)
	}

	// Gauges follow the source at scrape time, including a reloaded stale_after.
	used = 7
	stale = time.Hour * 100
	e = scrape(t, r)
	if got, _ := e.value("snomprov_dhcp_pool_used", map[string]string{"subnet": "10.77.0.0/24"}); got != 7 {
		t.Errorf("pool used after change = %v", got)
	}
	if got, _ := e.value("snomprov_phones", map[string]string{"state": "stale"}); got != 0 {
		t.Errorf("stale after raising stale_after = %v, want 0", got)
	}
}

func TestHeadScrapeHasNoBody(t *testing.T) {
	r := NewRecorder(nil)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/metrics", nil))
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != ContentType {
		t.Errorf("HEAD: body %d bytes, Content-Type %q", rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
}

// FuzzLabelValue: any label value, from any peer, yields an exposition a
// strict parser accepts and that reads back as the (UTF-8 sanitised) value.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"", "ACK", `a"b`, `a\b`, "a\nb", "\xff", `\n`, `\"`, "}", "{a=\"b\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := NewRecorder(nil)
		r.Record(inventory.Observation{Event: inventory.Event{Step: inventory.StepPhone, Kind: inventory.Kind(v)}})
		var b strings.Builder
		if _, err := r.Registry().WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		e, err := parseExposition(b.String())
		if err != nil {
			t.Fatalf("value %q: %v\n%s", v, err, b.String())
		}
		want := strings.ToValidUTF8(v, "\uFFFD")
		if want == "" {
			want = "unknown"
		}
		if got, ok := e.value("snomprov_http_requests_total", map[string]string{"kind": "phone", "status": want}); !ok || got != 1 {
			t.Fatalf("value %q did not round-trip:\n%s", v, b.String())
		}
	})
}

// BenchmarkRecord is the cost every DHCP packet, SUBSCRIBE and HTTP request
// pays for metrics.
func BenchmarkRecord(b *testing.B) {
	r := NewRecorder(nil)
	o := inventory.Observation{Event: inventory.Event{Step: inventory.StepPhone, Kind: "200"}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Record(o)
		}
	})
}

// BenchmarkScrape5000Phones: one scrape with a full inventory.
func BenchmarkScrape5000Phones(b *testing.B) {
	store, err := inventory.Open("", inventory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < 5000; i++ {
		m := phone.MAC{0x00, 0x04, 0x13, byte(i >> 16), byte(i >> 8), byte(i)}
		for j := 0; j < 50; j++ {
			store.Record(inventory.Observation{MAC: m, Event: inventory.Event{Time: now, Step: inventory.Steps[j%len(inventory.Steps)], Kind: "200", OK: true}})
		}
	}
	r := NewRecorder(store)
	RegisterPhones(r.Registry(), store, func() time.Duration { return time.Hour }, nil)
	RegisterBuildInfo(r.Registry(), "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Registry().WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-2, "-2"}, {1795644101, "1795644101"}, {2.5, "2.5"}, {1e20, "1e+20"},
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"}, {0.001, "0.001"},
	}
	for _, tc := range cases {
		if got := formatValue(tc.v); got != tc.want {
			t.Errorf("formatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
		if _, err := parseValue(formatValue(tc.v)); err != nil {
			t.Errorf("formatValue(%v) = %q does not parse: %v", tc.v, formatValue(tc.v), err)
		}
	}
}

// TestPromtoolAgrees cross-checks the in-test parser with the real linter
// when it is installed (Debian's prometheus package); the parser above is
// what CI relies on.
func TestPromtoolAgrees(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed; the in-test parser covers the format")
	}
	r := NewRecorder(nil)
	for _, k := range []inventory.Kind{"ACK", `we"ird\kind`, "line\nfeed", "\xff"} {
		r.Record(inventory.Observation{Event: inventory.Event{Step: inventory.StepDHCP, Kind: k}})
		r.Record(inventory.Observation{Event: inventory.Event{Step: inventory.StepPhone, Kind: k}})
		r.Record(inventory.Observation{Event: inventory.Event{Step: "x", Kind: k}})
	}
	store, _ := inventory.Open("", inventory.Options{})
	RegisterPhones(r.Registry(), store, nil, nil)
	RegisterPool(r.Registry(), func() []PoolUsage { return []PoolUsage{{"10.77.0.0/24", 1, 2}, {"10.20.0.0/24", 0, 9}} })
	RegisterPnPShed(r.Registry(), func() uint64 { return 3 })
	RegisterDHCPNoSubnet(r.Registry(), func() uint64 { return 1 })
	RegisterDHCPNotServed(r.Registry(), func() uint64 { return 2 })
	RegisterBuildInfo(r.Registry(), `v"1`)
	RegisterStart(r.Registry(), time.Now())
	var b strings.Builder
	if _, err := r.Registry().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, b.String())
	}
}

func TestInventoryBuffer(t *testing.T) {
	r := NewRecorder(nil)
	st := BufferStats{Buffered: 7, Dropped: 2, Written: 40, Connected: false}
	RegisterInventoryBuffer(r.Registry(), func() BufferStats { return st })
	e := scrape(t, r)
	for _, tc := range []struct {
		name, typ string
		want      float64
	}{
		{"snomprov_inventory_buffered_events", "gauge", 7},
		{"snomprov_inventory_database_up", "gauge", 0},
		{"snomprov_inventory_written_events_total", "counter", 40},
		{"snomprov_inventory_dropped_events_total", "counter", 2},
	} {
		got, ok := e.value(tc.name, map[string]string{})
		if f := e.families[tc.name]; !ok || got != tc.want || f.typ != tc.typ {
			t.Errorf("%s = %v (present %v), want %s %v", tc.name, got, ok, tc.typ, tc.want)
		}
	}
}
