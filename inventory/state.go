package inventory

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is a phone's place on its way to a working configuration.
type State string

// States in boot order, then the three off the path.
const (
	StateSeen            State = "seen"
	StateLeased          State = "leased"
	StatePnPAnswered     State = "pnp-answered"
	StateSettingsFetched State = "settings-fetched"
	StateFirmwareFetched State = "firmware-fetched"
	StateUpToDate        State = "up-to-date"
	StateFailed          State = "failed"
	StateStale           State = "stale"
	// StateFirmwareLoop: the firmware loop guard holds the phone (it fetched
	// the same image again and again without its version changing); it gets
	// no firmware until an installer releases it (a KindLoopCleared action).
	StateFirmwareLoop State = "firmware-loop"
)

// BootStates lists the states on a booting phone's path, in order.
var BootStates = []State{
	StateSeen, StateLeased, StatePnPAnswered, StateSettingsFetched, StateFirmwareFetched, StateUpToDate,
}

// States lists every state: the boot path, then the three off it. The status
// page, the metrics and the systemd status line name states in this order
// (or, the status line, the boot path reversed).
var States = append(slices.Clip(BootStates), StateFailed, StateStale, StateFirmwareLoop)

// ParseState reads a state's name (as `--state` and `?state=` give it).
func ParseState(text string) (State, error) {
	st := State(text)
	if slices.Contains(States, st) {
		return st, nil
	}
	names := make([]string, len(States))
	for i, s := range States {
		names[i] = string(s)
	}
	return "", fmt.Errorf("unknown state %q: use one of %s", text, strings.Join(names, ", "))
}

// UnmarshalText accepts only the states above.
func (s *State) UnmarshalText(text []byte) error {
	st, err := ParseState(string(text))
	if err != nil {
		return err
	}
	*s = st
	return nil
}

var stepState = map[Step]State{
	StepDHCP:          StateLeased,
	StepPnP:           StatePnPAnswered,
	StepGeneral:       StateSettingsFetched,
	StepPhone:         StateSettingsFetched,
	StepFirmwareFile:  StateFirmwareFetched,
	StepFirmwareImage: StateUpToDate,
}

// State derives the phone's state: the furthest step that succeeded, unless
// the most recent event of the boot is a failure (then failed, with that
// event's detail as the reason), or stale when the phone has not been seen
// for staleAfter (0 disables staleness), or firmware-loop while the loop
// guard holds it (FirmwareLoop).
//
// A phone is up to date once it fetched its firmware image, or once it
// fetched its settings and either runs the firmware they point at or its
// model has no firmware configured. For such an unmanaged model the 404s of
// the firmware fallback URLs the phone tries are expected, not failures.
func (p Phone) State(now time.Time, staleAfter time.Duration) (State, string) {
	if staleAfter > 0 && !p.LastSeen.IsZero() && now.Sub(p.LastSeen) > staleAfter {
		return StateStale, "not seen since " + p.LastSeen.Format(time.RFC3339)
	}
	if held, reason := p.FirmwareLoop(); held {
		return StateFirmwareLoop, reason
	}
	unmanaged := p.FirmwareTarget == FirmwareUnmanaged
	for i := len(p.Events) - 1; i >= 0; i-- {
		e := p.Events[i]
		if _, tracked := stepState[e.Step]; !tracked {
			continue
		}
		if unmanaged && (e.Step == StepFirmwareFile || e.Step == StepFirmwareImage) {
			continue
		}
		if !e.OK {
			return StateFailed, string(e.Step) + ": " + e.Detail
		}
		break
	}
	state := StateSeen
	for _, st := range Steps {
		if r, ok := p.Steps[st]; ok && r.OK {
			state = stepState[st]
		}
	}
	if b, ok := p.Steps[StepBootstrap]; ok && b.OK {
		if own, ok := p.Steps[StepPhone]; !ok || !own.OK || own.Time.Before(b.Time) {
			// Moved to HTTPS but its own file not fetched there since: it has
			// not got its settings, whatever the general file gave it.
			if slices.Index(BootStates, state) > slices.Index(BootStates, StateSettingsFetched) {
				state = StateSettingsFetched
			}
			return state, "the bootstrap moved it to HTTPS, where it has not fetched its own file yet " +
				"(does it trust the appliance's CA, and can it reach http.https_listen?)"
		}
	}
	if state == StateSettingsFetched || state == StateFirmwareFetched {
		if unmanaged || (p.FirmwareTarget != "" && p.Firmware == p.FirmwareTarget) {
			state = StateUpToDate
		}
	}
	return state, ""
}
