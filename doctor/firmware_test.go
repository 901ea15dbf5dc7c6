package doctor

import (
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

func TestCheckFirmware(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	canary, looper := phone.MAC{0, 4, 0x13, 0, 0, 1}, phone.MAC{0, 4, 0x13, 0, 0, 2}
	img := "snomD785-10.1.73.4-SIP-r.bin"
	fetch := func(min int) inventory.Event {
		return inventory.Event{Time: now.Add(time.Duration(min) * time.Minute), Step: inventory.StepFirmwareImage, Kind: "200", OK: true, Detail: "GET /firmware/" + img + " 200 9B"}
	}
	rep := &Report{}
	d := &doctor{rep: rep, o: Options{Firmware: &Firmware{
		Rollouts: []rollout.Rollout{
			{Scope: "models.snomD785", Image: img, Version: "10.1.73.4", Canaries: []phone.MAC{canary}, Timeout: time.Hour},
			{Scope: "groups.lab", Image: img, Version: "10.1.73.4", Canaries: []phone.MAC{{0, 4, 0x13, 0, 0, 9}}, Timeout: time.Hour},
		},
		Phones: []inventory.Phone{
			{MAC: canary, Firmware: "10.1.33.33", Events: []inventory.Event{fetch(-120)}},
			{MAC: looper, Firmware: "10.1.33.33", Events: []inventory.Event{fetch(-30), fetch(-20), fetch(-10)}},
		},
		Now: now,
	}}}
	d.checkFirmware()
	if len(rep.Rollouts) != 2 || rep.Rollouts[0].State != "held" || rep.Rollouts[1].State != "waiting" ||
		len(rep.Looping) != 1 || rep.Looping[0].MAC != looper.String() {
		t.Fatalf("%+v", rep)
	}
	var text []string
	for _, f := range rep.Findings {
		text = append(text, string(f.Level)+" "+f.Detail)
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"PROBLEM rollout of " + img + " to models.snomD785 is held: canary 000413000001 fetched",
		"warn rollout of " + img + " to groups.lab waits for canaries 000413000009",
		"PROBLEM phone 000413000002 is held by the firmware loop guard: it downloaded " + img + " 3 times",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in\n%s", want, all)
		}
	}
	if rep.Problems() != 2 { // the held rollout and the looping phone
		t.Errorf("%d problems:\n%s", rep.Problems(), all)
	}
}
