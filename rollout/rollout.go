// Package rollout decides whether a phone gets its firmware image now: a
// new image goes to a model's or group's canaries first and to the rest
// only once every canary runs it and is up to date; a canary that fetched
// it and did not come back with its version within canary_timeout holds
// the rollout; and the loop guard (inventory.Phone.FirmwareLoop) holds a
// phone that downloads one image again and again.
//
// Nothing is kept here: every answer is derived from the inventory's
// phones, so it survives a restart and reads the same from the file store
// and from PostgreSQL.
package rollout

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// DefaultCanaryTimeout is canary_timeout's default.
const DefaultCanaryTimeout = time.Hour

// Rollout is one image going to the phones of one scope (a model or a
// group), canaries first.
type Rollout struct {
	Scope    string // the config key of its scope: models.snomD785, groups.sales
	Image    string // the image (firmware) as configured: file name or URL
	Version  string // what a phone running it reports
	Canaries []phone.MAC
	Timeout  time.Duration // canary_timeout
}

// Phones is what the decision reads from the inventory.
type Phones interface {
	Phone(phone.MAC) (inventory.Phone, bool)
}

// State is where a rollout stands.
type State string

// Rollout states.
const (
	Waiting State = "waiting" // some canaries do not run the image yet
	Held    State = "held"    // a canary fetched it and did not come back with it in time
	Done    State = "done"    // every canary runs it and is up to date: the rest get it
)

// Status is a rollout with its canaries' progress.
type Status struct {
	Rollout
	State   State
	Done    []phone.MAC // run the image and are up to date
	Pending []phone.MAC // not yet
	Failed  []phone.MAC // fetched it, not back with it within Timeout
	Reason  string      // for waiting and held: which phones, and why
}

// Evaluate derives a rollout's status from its canaries' records at now.
func Evaluate(r Rollout, phones Phones, now time.Time) Status {
	st := Status{Rollout: r, State: Done}
	var failures []string
	for _, mac := range r.Canaries {
		p, seen := phones.Phone(mac)
		switch state, _ := p.State(now, 0); {
		case seen && p.Firmware == r.Version && state == inventory.StateUpToDate:
			st.Done = append(st.Done, mac)
		default:
			at, fetched := fetchedAt(p, r.Image)
			if fetched && now.Sub(at) > r.Timeout {
				st.Failed = append(st.Failed, mac)
				running := p.Firmware
				if running == "" {
					running = "an unknown version"
				}
				failures = append(failures, "canary "+mac.String()+" fetched "+phone.ImageName(r.Image)+" at "+
					at.UTC().Format(time.RFC3339)+" and still reports "+running+" after canary_timeout "+r.Timeout.String())
				continue
			}
			st.Pending = append(st.Pending, mac)
		}
	}
	switch {
	case len(st.Failed) > 0:
		st.State = Held
		st.Reason = "held: " + strings.Join(failures, "; ")
	case len(st.Pending) > 0:
		st.State = Waiting
		st.Reason = "waits for canaries " + macList(st.Pending) + " to report " + r.Version
	}
	return st
}

// fetchedAt is when the phone first fetched the image: downloaded it from
// here, or was handed a firmware file pointing at it (an image elsewhere).
func fetchedAt(p inventory.Phone, image string) (time.Time, bool) {
	name := phone.ImageName(image)
	for _, e := range p.Events {
		if !e.OK || (e.Step != inventory.StepFirmwareImage && e.Step != inventory.StepFirmwareFile) {
			continue
		}
		if e.Step == inventory.StepFirmwareImage {
			if _, path := inventory.RequestPath(e.Detail); phone.ImageName(path) == name {
				return e.Time, true
			}
			continue
		}
		if strings.HasSuffix(e.Detail, PointsAt+name) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// PointsAt ends the detail of a firmware file served with an image, before
// the image's name, so the timeline shows which image a phone was given.
const PointsAt = "points at "

func macList(macs []phone.MAC) string { return strings.Join(macTexts(macs), ", ") }

// Decision is whether a phone gets its image now, and why not.
type Decision struct {
	Serve  bool
	Reason string // when not served: the loop guard's or the rollout's reason
	Loop   bool   // held by the loop guard
}

// Gate decides for the HTTP server, reading the inventory. A rollout's
// status is derived at most once per CacheFor: a boot storm of phones
// asking for their firmware file reads each canary's record once a
// second, not once per phone. The requesting phone's own record (the loop
// guard) is read on every request, from the local view.
//
// With a shared inventory (PostgreSQL) no phone waits for the database:
// the request path reads only the local view (this appliance's records in
// memory) and the last status derived from the shared one; a status older
// than CacheFor is derived again in the background, and until a first one
// is there the local view's stands in. Safe for concurrent use; the zero
// value is not: use NewGate.
type Gate struct {
	local  Phones
	shared func() Phones // the shared inventory; nil, or returning nil: local is all
	now    func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	deriving map[string]bool // keys being derived from shared in the background
}

// CacheFor is how long a Gate reuses a rollout's derived status.
const CacheFor = time.Second

type cached struct {
	at time.Time
	st Status
}

// maxCached bounds the cache: rollouts of configurations reloaded away
// are dropped with the rest once it is full.
const maxCached = 256

// NewGate is a Gate over local, the phones this appliance holds in memory,
// and shared, which returns the inventory every appliance writes to (nil
// when local is all there is, as with the file store; shared itself may be
// nil). now may be nil (time.Now).
func NewGate(local Phones, shared func() Phones, now func() time.Time) *Gate {
	if now == nil {
		now = time.Now
	}
	return &Gate{local: local, shared: shared, now: now, cache: map[string]cached{}, deriving: map[string]bool{}}
}

// Decide says whether the phone mac gets image now. r is the rollout the
// image is part of (nil: a phone's own image, or no canaries).
func (g *Gate) Decide(mac phone.MAC, r *Rollout) Decision {
	return decide(g.local, mac, r, g.now(), g.status)
}

// status is Evaluate, cached for CacheFor; with a shared inventory it is
// derived from it off the request path.
func (g *Gate) status(r Rollout, local Phones, now time.Time) Status {
	key := r.Scope + "\x00" + r.Image + "\x00" + macList(r.Canaries) + "\x00" + r.Timeout.String()
	var shared Phones
	if g.shared != nil {
		shared = g.shared()
	}
	g.mu.Lock()
	c, ok := g.cache[key]
	fresh := ok && now.Sub(c.at) < CacheFor && !now.Before(c.at)
	start := !fresh && shared != nil && !g.deriving[key]
	if start {
		g.deriving[key] = true
	}
	g.mu.Unlock()
	switch {
	case fresh:
		return c.st
	case shared == nil:
		st := Evaluate(r, local, now)
		g.store(key, now, st)
		return st
	}
	if start {
		go func() {
			at := g.now()
			g.store(key, at, Evaluate(r, shared, at)) // as old as the data it read
			g.mu.Lock()
			delete(g.deriving, key)
			g.mu.Unlock()
		}()
	}
	if ok {
		return c.st // stale by less than one derivation
	}
	return Evaluate(r, local, now)
}

func (g *Gate) store(key string, at time.Time, st Status) {
	g.mu.Lock()
	if len(g.cache) >= maxCached {
		clear(g.cache)
	}
	g.cache[key] = cached{at: at, st: st}
	g.mu.Unlock()
}

func decide(phones Phones, mac phone.MAC, r *Rollout, now time.Time, evaluate func(Rollout, Phones, time.Time) Status) Decision {
	if !mac.IsZero() {
		if p, ok := phones.Phone(mac); ok {
			if held, reason := p.FirmwareLoop(); held {
				return Decision{Reason: reason, Loop: true}
			}
		}
	}
	if r == nil || len(r.Canaries) == 0 || (!mac.IsZero() && slices.Contains(r.Canaries, mac)) {
		return Decision{Serve: true}
	}
	st := evaluate(*r, phones, now)
	if st.State == Done {
		return Decision{Serve: true}
	}
	verb := " " // "waits for canaries ..."
	if st.State == Held {
		verb = " is " // "is held: canary ..."
	}
	return Decision{Reason: "keep the running firmware: the rollout of " + phone.ImageName(r.Image) + " to " + r.Scope + verb + st.Reason}
}

// Statuses evaluates every rollout, for the status page and doctor.
func Statuses(rs []Rollout, phones Phones, now time.Time) []Status {
	out := make([]Status, len(rs))
	for i, r := range rs {
		out[i] = Evaluate(r, phones, now)
	}
	return out
}

// Summary is a Status as the status page, its API and doctor show it.
type Summary struct {
	Scope   string   `json:"scope"` // models.snomD785, groups.sales
	Image   string   `json:"image"` // the image's file name
	Version string   `json:"version"`
	State   State    `json:"state"`
	Reason  string   `json:"reason,omitempty"`
	Done    []string `json:"canaries_done"`
	Pending []string `json:"canaries_pending"`
	Failed  []string `json:"canaries_failed"`
	Timeout string   `json:"canary_timeout"`
}

// Summary is st for display.
func (st Status) Summary() Summary {
	return Summary{Scope: st.Scope, Image: phone.ImageName(st.Image), Version: st.Version, State: st.State, Reason: st.Reason,
		Done: macTexts(st.Done), Pending: macTexts(st.Pending), Failed: macTexts(st.Failed), Timeout: st.Timeout.String()}
}

func macTexts(macs []phone.MAC) []string {
	out := make([]string, len(macs))
	for i, m := range macs {
		out[i] = m.String()
	}
	return out
}
