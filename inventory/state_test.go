package inventory

import (
	"strings"
	"testing"
	"time"
)

// A phone the bootstrap moved to HTTPS is not provisioned until it fetched
// its own file there: no firmware configured or not, it is not up to date.
func TestStateBootstrapPending(t *testing.T) {
	now := time.Now()
	p := Phone{FirmwareTarget: FirmwareUnmanaged, Steps: map[Step]StepResult{
		StepPnP:       {Time: now.Add(-3 * time.Second), OK: true},
		StepGeneral:   {Time: now.Add(-2 * time.Second), OK: true},
		StepBootstrap: {Time: now.Add(-time.Second), OK: true},
	}}
	if st, why := p.State(now, 0); st != StateSettingsFetched || !strings.Contains(why, "HTTPS") {
		t.Errorf("bootstrapped, own file not fetched: %s (%s)", st, why)
	}
	p.Steps[StepPhone] = StepResult{Time: now, OK: true}
	if st, why := p.State(now, 0); st != StateUpToDate || why != "" {
		t.Errorf("own file fetched over HTTPS after the bootstrap: %s (%s)", st, why)
	}
}
