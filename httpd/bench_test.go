package httpd

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkServePerMAC is the hot path: route, identity, lookup, headers,
// one inventory record, with 1000 phones configured.
func BenchmarkServePerMAC(b *testing.B) {
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
	s, err := New(Options{Listen: ":0", Catalog: cat}, nil, store)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1/snomD785-0004130001F4.htm", nil)
	req.Header.Set("User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 0004130001F4 SXM:0 UXM:0)")
	req.RemoteAddr = "10.77.0.11:40000"
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}
