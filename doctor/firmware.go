package doctor

import (
	"fmt"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

// Firmware is the firmware side of the appliance, read from the inventory
// it keeps (the state_dir snapshot or the shared PostgreSQL inventory) and
// its configuration: where each staged rollout stands, which phones the
// loop guard holds.
type Firmware struct {
	Rollouts []rollout.Rollout
	Phones   []inventory.Phone
	Now      time.Time
}

// LoopingPhone is a phone the loop guard holds.
type LoopingPhone struct {
	MAC    string `json:"mac"`
	Reason string `json:"reason"`
}

type phoneList map[phone.MAC]inventory.Phone

func (l phoneList) Phone(m phone.MAC) (inventory.Phone, bool) { p, ok := l[m]; return p, ok }

// checkFirmware lists held rollouts and looping phones as problems, and
// rollouts still waiting for canaries as warnings.
func (d *doctor) checkFirmware() {
	f := d.o.Firmware
	if f == nil {
		return
	}
	byMAC := make(phoneList, len(f.Phones))
	for _, p := range f.Phones {
		if old, dup := byMAC[p.MAC]; !dup || p.LastSeen.After(old.LastSeen) {
			byMAC[p.MAC] = p // seen at several sites: the latest
		}
	}
	for _, st := range rollout.Statuses(f.Rollouts, byMAC, f.Now) {
		c := st.Summary()
		d.rep.Rollouts = append(d.rep.Rollouts, c)
		detail := fmt.Sprintf("rollout of %s to %s", c.Image, st.Scope)
		switch st.State {
		case rollout.Held:
			d.add("firmware", Problem, detail+" is "+st.Reason,
				"look at the canary's timeline (snomprov phone MAC): put the old image back in "+st.Scope+" firmware, or fix the canary and let it report the new version")
		case rollout.Waiting:
			d.add("firmware", Warning, detail+" "+st.Reason, "boot the pending canaries; the other phones keep their firmware until they report it")
		default:
			d.add("firmware", Info, detail+" is done: every canary runs it, the other phones get it", "")
		}
	}
	for _, p := range f.Phones {
		if held, reason := p.FirmwareLoop(); held {
			d.rep.Looping = append(d.rep.Looping, LoopingPhone{MAC: p.MAC.String(), Reason: reason})
			d.add("firmware", Problem, "phone "+p.MAC.String()+" is held by the "+reason,
				"check that its image is for its model and not damaged, then clear the loop guard on the status page")
		}
	}
}
