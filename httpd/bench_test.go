package httpd

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
	"github.com/snomprov/snomprov/rollout"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// benchServer has 1000 phones configured and a real inventory store.
func benchServer(b *testing.B) *Server {
	cfg := testConfig()
	for i := 0; i < 1000; i++ {
		m, _ := phone.ParseMAC(fmt.Sprintf("000413%06X", i))
		cfg.Phones = append(cfg.Phones, config.Phone{MAC: m, Settings: config.Settings{
			"user_name": {Indexed: map[int]config.IndexedValue{1: {Value: fmt.Sprint(1000 + i)}}},
		}})
	}
	cat, err := provision.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	store, _ := inventory.Open("", inventory.Options{})
	s, err := New(Options{Listen: ":0", Catalog: cat, CleartextPhones: plainA}, nil, store)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkServePerMAC is the hot path under net/http: route, identity,
// lookup, headers, one inventory record, with 1000 phones configured.
func BenchmarkServePerMAC(b *testing.B) {
	s := benchServer(b)
	benchServe(b, s, "/snomD785-0004130001F4.htm", "0004130001F4")
}

// benchServe serves GET path from the phone mac (its Snom User-Agent) b.N
// times.
func benchServe(b *testing.B, s *Server, path, mac string) {
	req := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
	req.Header.Set("User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 "+mac+" SXM:0 UXM:0)")
	req.RemoteAddr = "10.77.0.11:40000"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}

// FuzzServeHTTP drives the whole decision flow with hostile paths, queries
// and User-Agents: it must never panic, never answer anything but the
// expected statuses, and never hand phone A's secret to a request that
// does not name phone A.
func FuzzServeHTTP(f *testing.F) {
	cfg := testConfig()
	cfg.HTTP.URL = "http://127.0.0.1/cfg/{phone_type}-{mac}.xml"
	cat, err := provision.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Options{Listen: ":0", URL: cfg.HTTP.URL, Catalog: cat, CleartextPhones: plainA, FirmwareDir: f.TempDir()}, nil, inventory.Discard)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("/snomD785-000413A11FA7.htm", "", uaD785)
	f.Add("/cfg/snomD785-000413a11fa7.xml", "mac=000413B22FB8", "")
	f.Add("/snomD785.htm", "mac=000413A11FA7", uaDECT)
	f.Add("/firmware/../x", "", "")
	f.Fuzz(func(t *testing.T, path, query, ua string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}, Host: "127.0.0.1", RemoteAddr: "10.0.0.9:1000"}
		req.Header.Set("User-Agent", ua)
		req = req.WithContext(context.Background())
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		switch w.Code {
		case 200, 304, 404, 405:
		default:
			t.Fatalf("%q?%q: status %d", path, query, w.Code)
		}
		if strings.Contains(w.Body.String(), "topsecret401") {
			m, ok := fuzzPathMAC(path)
			if !ok || m != mac(macA) {
				t.Fatalf("phone A's secret served for %q?%q UA %q", path, query, ua)
			}
		}
	})
}

// fuzzPathMAC extracts the MAC a served path names, for the fuzz oracle.
func fuzzPathMAC(path string) (phone.MAC, bool) {
	tpl, _ := provision.ParseURLTemplate("http://127.0.0.1/cfg/{phone_type}-{mac}.xml")
	r := route(path, &tpl)
	return r.MAC, r.HasMAC
}

// BenchmarkServeFirmwareFile is the firmware file's path with the rollout
// gate reading a real inventory store (the phone and its canaries each
// with a full timeline), beside the same path without a gate in the same
// run: the cost of the decision is the difference.
func BenchmarkServeFirmwareFile(b *testing.B) {
	const requester = "0004130001F4"
	canaries := []phone.MAC{{0, 4, 0x13, 0, 0, 1}, {0, 4, 0x13, 0, 0, 2}, {0, 4, 0x13, 0, 0, 3}}
	for _, c := range []struct {
		name     string
		gate     bool
		canaries []phone.MAC
	}{
		{"no gate", false, nil},
		{"loop guard only", true, nil},
		{"rollout with 3 canaries", true, canaries},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := testConfig()
			m := cfg.Models["snomD785"]
			m.Canaries = c.canaries
			cfg.Models["snomD785"] = m
			cat, err := provision.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			store, _ := inventory.Open("", inventory.Options{})
			req, _ := phone.ParseMAC(requester)
			for _, mac := range append([]phone.MAC{req}, canaries...) {
				for i := range 50 {
					store.Record(inventory.Observation{MAC: mac, Firmware: "10.1.33.33", Event: inventory.Event{Step: inventory.StepGeneral, Kind: "200", OK: true, Detail: fmt.Sprintf("GET /snomD785.htm 200 %dB", i)}})
				}
			}
			o := Options{Listen: ":0", Catalog: cat, CleartextPhones: plainA}
			if c.gate {
				o.Firmware = rollout.NewGate(store, nil, nil)
			}
			s, err := New(o, nil, store)
			if err != nil {
				b.Fatal(err)
			}
			benchServe(b, s, "/snomD785-firmware.htm", requester)
		})
	}
}
