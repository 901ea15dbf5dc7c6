package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

type fakePhones map[phone.MAC]inventory.Phone

func (f fakePhones) Phone(m phone.MAC) (inventory.Phone, bool) { p, ok := f[m]; return p, ok }

var (
	t0     = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	canA   = phone.MAC{0, 4, 0x13, 0, 0, 0xa}
	canB   = phone.MAC{0, 4, 0x13, 0, 0, 0xb}
	other  = phone.MAC{0, 4, 0x13, 0, 0, 0xc}
	looper = phone.MAC{0, 4, 0x13, 0, 0, 0xd}
	image  = "snomD785-10.1.73.4-SIP-r.bin"
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

// upToDate runs v and fetched settings pointing at it.
func upToDate(v string) inventory.Phone {
	return inventory.Phone{Firmware: v, FirmwareTarget: v, LastSeen: at(30),
		Steps:  map[inventory.Step]inventory.StepResult{inventory.StepGeneral: {Time: at(30), OK: true}},
		Events: []inventory.Event{{Time: at(30), Step: inventory.StepGeneral, Kind: "200", OK: true, Detail: "GET /snomD785.htm 200 1B"}}}
}

// fetched downloaded the image at min and still runs v.
func fetched(v string, min int) inventory.Phone {
	p := upToDate(v)
	p.FirmwareTarget = "10.1.73.4"
	p.Events = append(p.Events, inventory.Event{Time: at(min), Step: inventory.StepFirmwareImage, Kind: "200", OK: true, Detail: "GET /firmware/" + image + " 200 1000B"})
	p.Steps[inventory.StepFirmwareImage] = inventory.StepResult{Time: at(min), OK: true}
	return p
}

func looping() inventory.Phone {
	p := fetched("10.1.33.33", 1)
	for _, m := range []int{2, 3} {
		p.Events = append(p.Events, inventory.Event{Time: at(m), Step: inventory.StepFirmwareImage, Kind: "200", OK: true, Detail: "GET /firmware/" + image + " 200 1000B"})
	}
	return p
}

func TestDecide(t *testing.T) {
	r := &Rollout{Scope: "models.snomD785", Image: image, Version: "10.1.73.4", Canaries: []phone.MAC{canA, canB}, Timeout: time.Hour}
	for _, c := range []struct {
		name   string
		phones fakePhones
		mac    phone.MAC
		r      *Rollout
		now    int
		serve  bool
		state  State
		reason string // in the decision's reason
	}{
		{"no rollout", fakePhones{}, other, nil, 0, true, "", ""},
		{"no canaries", fakePhones{}, other, &Rollout{Image: image, Version: "10.1.73.4"}, 0, true, "", ""},
		{"a canary always gets it", fakePhones{}, canA, r, 0, true, Waiting, ""},
		{"the rest wait for canaries not seen", fakePhones{}, other, r, 0, false, Waiting, "waits for canaries 00041300000A, 00041300000B"},
		{"one canary back, one pending", fakePhones{canA: upToDate("10.1.73.4"), canB: fetched("10.1.33.33", 20)}, other, r, 40, false, Waiting, "waits for canaries 00041300000B"},
		{"both back: the rest get it", fakePhones{canA: upToDate("10.1.73.4"), canB: upToDate("10.1.73.4")}, other, r, 40, true, Done, ""},
		{"a canary not back in time holds it", fakePhones{canA: upToDate("10.1.73.4"), canB: fetched("10.1.33.33", 20)}, other, r, 90, false, Held, "held: canary 00041300000B fetched " + image},
		{"a MAC-less request waits too", fakePhones{}, phone.MAC{}, r, 0, false, Waiting, "waits"},
		{"the loop guard wins over a canary", fakePhones{canA: looping()}, canA, r, 10, false, Waiting, inventory.LoopGuardMark},
		{"the loop guard holds a pinned phone", fakePhones{looper: looping()}, looper, nil, 10, false, "", inventory.LoopGuardMark},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decide(c.phones, c.mac, c.r, at(c.now), Evaluate)
			if d.Serve != c.serve || !strings.Contains(d.Reason, c.reason) || (d.Serve && d.Reason != "") {
				t.Errorf("decide = %+v, want serve %v with %q", d, c.serve, c.reason)
			}
			if c.r != nil && len(c.r.Canaries) > 0 {
				if st := Evaluate(*c.r, c.phones, at(c.now)); st.State != c.state {
					t.Errorf("state %s (%s), want %s", st.State, st.Reason, c.state)
				}
			}
		})
	}
}

func TestEvaluateLists(t *testing.T) {
	r := Rollout{Scope: "groups.sales", Image: "http://dl/" + image, Version: "10.1.73.4", Canaries: []phone.MAC{canA, canB, other}, Timeout: 30 * time.Minute}
	b := upToDate("10.1.33.33")
	// Handed a firmware file pointing at the image elsewhere.
	b.Events = append(b.Events, inventory.Event{Time: at(5), Step: inventory.StepFirmwareFile, Kind: "200", OK: true, Detail: "GET /snomD785-firmware.htm 200: " + PointsAt + image})
	st := Evaluate(r, fakePhones{canA: upToDate("10.1.73.4"), canB: b}, at(40))
	if st.State != Held || len(st.Done) != 1 || st.Done[0] != canA || len(st.Failed) != 1 || st.Failed[0] != canB ||
		len(st.Pending) != 1 || st.Pending[0] != other || !strings.Contains(st.Reason, "canary 00041300000B") {
		t.Errorf("%+v", st)
	}
	// Running the version but not up to date (its settings were not
	// fetched since) is not done yet.
	stale := upToDate("10.1.73.4")
	stale.FirmwareTarget = "10.1.80.0"
	if st := Evaluate(Rollout{Image: image, Version: "10.1.73.4", Canaries: []phone.MAC{canA}, Timeout: time.Hour}, fakePhones{canA: stale}, at(40)); st.State != Waiting {
		t.Errorf("%+v", st)
	}
}

// countingPhones counts the records read.
type countingPhones struct {
	fakePhones
	reads int
}

func (c *countingPhones) Phone(m phone.MAC) (inventory.Phone, bool) {
	c.reads++
	return c.fakePhones.Phone(m)
}

// TestGateCache: within CacheFor the canaries are read once; after it, or
// for another rollout, again; the requester's own record every time.
func TestGateCache(t *testing.T) {
	phones := &countingPhones{fakePhones: fakePhones{canA: upToDate("10.1.33.33")}}
	now := at(0)
	g := NewGate(phones, nil, func() time.Time { return now })
	r := &Rollout{Scope: "models.snomD785", Image: image, Version: "10.1.73.4", Canaries: []phone.MAC{canA, canB}, Timeout: time.Hour}
	for range 3 {
		if d := g.Decide(other, r); d.Serve {
			t.Fatal("served while waiting")
		}
	}
	if phones.reads != 3+2 { // the requester thrice, the two canaries once
		t.Errorf("%d reads", phones.reads)
	}
	phones.fakePhones[canA], phones.fakePhones[canB] = upToDate("10.1.73.4"), upToDate("10.1.73.4")
	if d := g.Decide(other, r); d.Serve {
		t.Error("the cached status changed within CacheFor")
	}
	now = now.Add(CacheFor)
	if d := g.Decide(other, r); !d.Serve {
		t.Errorf("not served once the canaries are back: %+v", d)
	}
	r2 := *r
	r2.Canaries = []phone.MAC{canA}
	before := phones.reads
	g.Decide(other, &r2)
	if phones.reads != before+2 {
		t.Errorf("another rollout read %d records", phones.reads-before)
	}
}

// blockingPhones is a shared inventory that answers only when released,
// as a hung database would.
type blockingPhones struct {
	fakePhones
	release chan struct{}
}

func (b blockingPhones) Phone(m phone.MAC) (inventory.Phone, bool) {
	<-b.release
	return b.fakePhones.Phone(m)
}

// TestGateNeverWaitsForShared: with a shared inventory that does not
// answer, Decide answers from the local view at once; once the shared one
// answers, its status is what Decide gives.
func TestGateNeverWaitsForShared(t *testing.T) {
	local := fakePhones{} // this appliance has seen no canary
	shared := blockingPhones{fakePhones{canA: upToDate("10.1.73.4"), canB: upToDate("10.1.73.4")}, make(chan struct{})}
	g := NewGate(local, func() Phones { return shared }, nil)
	r := &Rollout{Scope: "models.snomD785", Image: image, Version: "10.1.73.4", Canaries: []phone.MAC{canA, canB}, Timeout: time.Hour}
	for range 3 { // would block here if the request path read shared
		if d := g.Decide(other, r); d.Serve || !strings.Contains(d.Reason, "waits for canaries") {
			t.Fatalf("while the shared inventory hangs: %+v", d)
		}
	}
	close(shared.release)
	deadline := time.Now().Add(10 * time.Second)
	for !g.Decide(other, r).Serve {
		if time.Now().After(deadline) {
			t.Fatal("the shared inventory's status (every canary back) never reached Decide")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
