package httpd

import (
	"strings"
	"sync"
	"testing"

	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

// gate is a FirmwareGate answering what the test sets.
type gate struct {
	mu   sync.Mutex
	d    rollout.Decision
	asks []*rollout.Rollout // what it was asked about
}

func (g *gate) Decide(_ phone.MAC, r *rollout.Rollout) rollout.Decision {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asks = append(g.asks, r)
	if r == nil && !g.d.Loop {
		return rollout.Decision{Serve: true} // as rollout.Gate: only the loop guard holds an image without a rollout
	}
	return g.d
}

func (g *gate) set(d rollout.Decision) { g.mu.Lock(); g.d = d; g.mu.Unlock() }

// TestFirmwareGate: the firmware file points at the image only when the
// gate lets the phone have it, else it is the keep-what-you-run file with
// the reason in the timeline; the loop guard refuses the image itself.
func TestFirmwareGate(t *testing.T) {
	g := &gate{d: rollout.Decision{Serve: true}}
	cfg := testConfig()
	m := cfg.Models["snomD785"]
	m.Canaries = []phone.MAC{{0, 4, 0x13, 0, 0, 1}}
	cfg.Models["snomD785"] = m
	h := start(t, cfg, func(o *Options) { o.Firmware = g })
	image := "/firmware/snomD785-10.1.215.13-SIP-r.bin"

	r := get(t, nil, "GET", h.url+"/snomD785-firmware.htm", "User-Agent", uaD785)
	if r.status != 200 || !strings.Contains(r.body, image) {
		t.Fatalf("served: %d\n%s", r.status, r.body)
	}
	served := r.header.Get("Etag")
	g.mu.Lock()
	if len(g.asks) != 1 || g.asks[0] == nil || g.asks[0].Scope != "models.snomD785" {
		t.Errorf("the gate was asked about %v", g.asks)
	}
	g.mu.Unlock()
	if o := h.rec.last(t); !strings.HasSuffix(o.Event.Detail, ": "+rollout.PointsAt+"snomD785-10.1.215.13-SIP-r.bin") {
		t.Errorf("detail %q", o.Event.Detail)
	}

	g.set(rollout.Decision{Reason: "keep the running firmware: the rollout waits"})
	n := h.rec.count()
	// The copy the phone has is no longer current: If-Modified-Since does
	// not make it a 304, its ETag does not match.
	r = get(t, nil, "GET", h.url+"/snomD785-firmware.htm", "User-Agent", uaD785, "If-Modified-Since", "Sun, 06 Dec 2099 10:00:00 GMT", "If-None-Match", served)
	if r.status != 200 || strings.Contains(r.body, "<firmware ") || !strings.Contains(r.body, "<firmware-settings>") {
		t.Fatalf("held: %d\n%s", r.status, r.body)
	}
	if o := h.rec.after(t, n); !o.Event.OK || !strings.HasSuffix(o.Event.Detail, ": keep the running firmware: the rollout waits") {
		t.Errorf("held detail %q", o.Event.Detail)
	}
	// A rollout only holds the firmware file; a phone asking for the image
	// by its URL gets it.
	if r := get(t, nil, "GET", h.url+image, "User-Agent", uaD785); r.status != 200 {
		t.Errorf("image during a rollout: %d", r.status)
	}
	g.set(rollout.Decision{Reason: "firmware loop guard: it downloaded x 3 times", Loop: true})
	n = h.rec.count()
	if r := get(t, nil, "GET", h.url+image, "User-Agent", uaD785); r.status != 404 || !strings.Contains(r.body, "firmware loop guard") {
		t.Errorf("image under the loop guard: %d %s", r.status, r.body)
	}
	if o := h.rec.after(t, n); o.Event.OK || !strings.Contains(o.Event.Detail, "404: firmware loop guard: it downloaded x 3 times") {
		t.Errorf("loop detail %q", o.Event.Detail)
	}
}
