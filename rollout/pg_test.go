package rollout_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/inventory/pgstore"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

// TestRolloutFromPostgreSQL: the rollout's state is derived from the
// shared inventory, so an appliance at another site (or this one after a
// restart, with nothing in memory) sees the canary that holds it.
func TestRolloutFromPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func(site string) *pgstore.Store {
		s, err := pgstore.Open(pgstore.Options{URL: pg.URL(), Site: site, StateDir: t.TempDir()}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return s
	}
	canary := phone.MAC{0, 4, 0x13, 0, 0, 1}
	other := phone.MAC{0, 4, 0x13, 0, 0, 2}
	const image = "snomD785-10.1.73.4-SIP-r.bin"
	r := &rollout.Rollout{Scope: "models.snomD785", Image: image, Version: "10.1.73.4", Canaries: []phone.MAC{canary}, Timeout: time.Hour}

	berlin := open("berlin")
	fetched := time.Now().Add(-2 * time.Hour)
	berlin.Record(inventory.Observation{MAC: canary, Model: "snomD785", Firmware: "10.1.33.33", FirmwareTarget: "10.1.73.4",
		Event: inventory.Event{Time: fetched, Step: inventory.StepGeneral, Kind: "200", OK: true, Detail: "GET /snomD785.htm 200 900B"}})
	berlin.Record(inventory.Observation{MAC: canary, Firmware: "10.1.33.33",
		Event: inventory.Event{Time: fetched.Add(time.Second), Step: inventory.StepFirmwareImage, Kind: "200", OK: true, Detail: "GET /firmware/" + image + " 200 1000B"}})
	deadline := time.Now().Add(30 * time.Second)
	for berlin.Stats().Buffered > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events still buffered: %+v", berlin.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}

	munich := open("munich") // has seen neither phone itself
	gate := rollout.NewGate(munich.Local(), func() rollout.Phones { return munich }, nil)
	// The first answer is munich's own view (it has seen no canary: waiting)
	// while the shared one is read in the background; the next ones are that.
	var d rollout.Decision
	for d = gate.Decide(other, r); !strings.Contains(d.Reason, "is held"); d = gate.Decide(other, r) {
		if d.Serve || time.Now().After(deadline) {
			t.Fatalf("decision from the shared inventory: %+v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d.Serve || !strings.Contains(d.Reason, "is held: canary "+canary.String()+" fetched "+image) {
		t.Errorf("decision from the shared inventory: %+v", d)
	}
	st := rollout.Evaluate(*r, munich, time.Now())
	if st.State != rollout.Held || len(st.Failed) != 1 || st.Failed[0] != canary {
		t.Errorf("status %+v", st)
	}
}
