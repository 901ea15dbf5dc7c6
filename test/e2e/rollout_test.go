package e2e

// The staged firmware rollout and the loop guard, driven by simulated
// phones against the real binary on a namespace LAN: a canary that comes
// back (then the rest get the image), a canary that does not (the rollout
// is held, naming it, on the status API), and a phone that keeps
// downloading its image (held by the loop guard, released by a
// loop-cleared action recorded in the inventory, then served again).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
	"github.com/snomprov/snomprov/simulate"
)

const (
	rolloutImage   = "snomD785-10.1.200.1-SIP-r.bin" // what newSnomprovLAN puts in firmware_dir
	rolloutVersion = "10.1.200.1"
)

var (
	canaryMAC = mustMAC("000413AA0001")
	restMAC   = mustMAC("000413AA0002")
	loopMAC   = mustMAC("000413AA0003")
)

func mustMAC(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// serveRollout runs snomprov with snomD785's image rolled out to one
// canary (canary_timeout as given), a second phone of that model, and a
// phone of group lab, which gets the same image without canaries. state
// is the state_dir ("" for a new one).
func (s *snomprovLAN) serveRollout(t *testing.T, timeout, state string) *snomprovProcess {
	t.Helper()
	if state == "" {
		state = t.TempDir()
	}
	cfg := writeConfig(t, fmt.Sprintf(`[server]
interface = "eth0"
advertise = "10.77.0.1"
state_dir = %q

[http]
listen = ":8080"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = %q

[pnp]
answer = "all"

[models.snomD785]
firmware = %q
canaries = ["%s"]
canary_timeout = %q

[groups.lab]
firmware = %q
phones = ["%s"]

[[phones]]
mac = "%s"
model = "snomD785"

[[phones]]
mac = "%s"
model = "snomD785"

[[phones]]
mac = "%s"
model = "snomD785"
`, state, s.fw, rolloutImage, canaryMAC, timeout, rolloutImage, loopMAC, canaryMAC, restMAC, loopMAC))
	p := s.srv.Start(binary(t), "serve", "-config", cfg)
	if err := p.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("snomprov serve did not get ready: %v\n%s", err, p.Output())
	}
	t.Cleanup(p.Stop)
	return &snomprovProcess{Process: p, state: state, config: cfg}
}

type snomprovProcess struct {
	*lantest.Process
	state  string // its state_dir
	config string // its config file
}

// doctor runs `snomprov doctor` on the appliance's host with its config
// and returns what it printed, once the inventory it reads (the state_dir
// snapshot, flushed every 2 s) holds want.
func (s *snomprovLAN) doctor(t *testing.T, srv *snomprovProcess, want string) string {
	t.Helper()
	var out string
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _ = s.srv.Run(ctx, binary(t), "doctor", "-config", srv.config, "-interface", "eth0", "-timeout", "1s")
		cancel()
		if strings.Contains(out, want) {
			t.Logf("snomprov doctor:\n%s", out)
			return out
		}
		time.Sleep(time.Second)
	}
	t.Errorf("snomprov doctor does not say %q:\n%s", want, out)
	return out
}

// boot simulates one phone running firmware and returns its firmware
// steps: the firmware file's and, when it was handed one, the image's.
func (s *snomprovLAN) boot(t *testing.T, mac phone.MAC, firmware string) (file, image *simulate.Step) {
	t.Helper()
	var rep simulate.Report
	text, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac, Firmware: firmware, NoDHCP: true}}, &rep)
	if toolErr != "" || len(rep.Phones) != 1 {
		t.Fatalf("simulate %s failed: %s\n%s", mac, toolErr, text)
	}
	for i, st := range rep.Phones[0].Steps {
		switch st.Name {
		case "firmware-file":
			file = &rep.Phones[0].Steps[i]
		case "firmware-image":
			image = &rep.Phones[0].Steps[i]
		}
	}
	if file == nil {
		t.Fatalf("%s: no firmware-file step:\n%s", mac, text)
	}
	return file, image
}

// wantImage fails unless the phone was handed the image and downloaded it.
func wantImage(t *testing.T, who string, file, image *simulate.Step) {
	t.Helper()
	if file.Status != simulate.OK || image == nil || image.Status != simulate.OK || !strings.HasSuffix(image.Target, "/firmware/"+rolloutImage) {
		t.Errorf("%s: want the image, got file %+v image %+v", who, file, image)
	}
}

// wantHeld fails unless the phone got no image, with why in the detail.
func wantHeld(t *testing.T, who string, file, image *simulate.Step, why string) {
	t.Helper()
	if file.Status != simulate.Warn || image != nil || !strings.Contains(file.Detail, why) {
		t.Errorf("%s: want no image because %q, got file %+v image %+v", who, why, file, image)
	}
}

// getJSON fetches a status API path from the phone host into v.
func (s *snomprovLAN) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := s.phone.Run(ctx, "curl", "-sf", "http://10.77.0.1:8080"+path)
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", path, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
}

type rolloutAPI struct {
	Scope   string   `json:"scope"`
	State   string   `json:"state"`
	Reason  string   `json:"reason"`
	Done    []string `json:"canaries_done"`
	Pending []string `json:"canaries_pending"`
	Failed  []string `json:"canaries_failed"`
}

func (s *snomprovLAN) rollout(t *testing.T, scope string) rolloutAPI {
	t.Helper()
	var list []rolloutAPI
	s.getJSON(t, "/api/rollouts", &list)
	for _, r := range list {
		if r.Scope == scope {
			return r
		}
	}
	t.Fatalf("no rollout %s in %+v", scope, list)
	return rolloutAPI{}
}

func TestRolloutOnTheWire(t *testing.T) {
	needTool(t, "curl")
	s := newSnomprovLAN(t)

	t.Run("a canary that comes back: then the rest get the image", func(t *testing.T) {
		srv := s.serveRollout(t, "1h", "")
		defer srv.Stop()
		file, image := s.boot(t, restMAC, simulate.DefaultFirmware)
		wantHeld(t, "the rest before the canary", file, image, "waits for canaries "+canaryMAC.String())
		if r := s.rollout(t, "models.snomD785"); r.State != "waiting" || len(r.Pending) != 1 || r.Pending[0] != canaryMAC.String() {
			t.Errorf("rollout %+v", r)
		}
		file, image = s.boot(t, canaryMAC, simulate.DefaultFirmware)
		wantImage(t, "the canary", file, image)
		// The canary flashed it and boots again on the new version.
		s.boot(t, canaryMAC, rolloutVersion)
		if r := s.rollout(t, "models.snomD785"); r.State != "done" || len(r.Done) != 1 || r.Done[0] != canaryMAC.String() {
			t.Errorf("rollout after the canary came back %+v\nsnomprov:\n%s", r, srv.Output())
		}
		time.Sleep(rollout.CacheFor) // the gate's status of the rollout from the rest's first boot is stale by now
		file, image = s.boot(t, restMAC, simulate.DefaultFirmware)
		wantImage(t, "the rest after the canary", file, image)
	})

	t.Run("a canary that does not come back holds the rollout", func(t *testing.T) {
		srv := s.serveRollout(t, "2s", "")
		defer srv.Stop()
		file, image := s.boot(t, canaryMAC, simulate.DefaultFirmware)
		wantImage(t, "the canary", file, image)
		time.Sleep(3 * time.Second) // past canary_timeout, still on the old version
		file, image = s.boot(t, restMAC, simulate.DefaultFirmware)
		wantHeld(t, "the rest", file, image, "held: canary "+canaryMAC.String()+" fetched "+rolloutImage)
		r := s.rollout(t, "models.snomD785")
		if r.State != "held" || len(r.Failed) != 1 || r.Failed[0] != canaryMAC.String() || !strings.Contains(r.Reason, "still reports "+simulate.DefaultFirmware) {
			t.Errorf("rollout %+v", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		page, err := s.phone.Run(ctx, "curl", "-sf", "http://10.77.0.1:8080/")
		if err != nil || !strings.Contains(page, `id="rollouts"`) || !strings.Contains(page, "held: canary "+canaryMAC.String()) {
			t.Errorf("status page (%v) does not show the held rollout:\n%s", err, page)
		}
		s.doctor(t, srv, "PROBLEM rollout of "+rolloutImage+" to models.snomD785 is held: canary "+canaryMAC.String())
	})

	t.Run("a phone looping on its image is held, released, served again", func(t *testing.T) {
		srv := s.serveRollout(t, "1h", "")
		for i := 1; i <= inventory.LoopFetches; i++ {
			file, image := s.boot(t, loopMAC, simulate.DefaultFirmware)
			wantImage(t, fmt.Sprintf("download %d", i), file, image)
		}
		file, image := s.boot(t, loopMAC, simulate.DefaultFirmware)
		wantHeld(t, "the looping phone", file, image, inventory.LoopGuardMark+"it downloaded "+rolloutImage+" 3 times")
		var p struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		}
		s.getJSON(t, "/api/phones/"+loopMAC.String(), &p)
		if p.State != string(inventory.StateFirmwareLoop) || !strings.HasPrefix(p.Reason, inventory.LoopGuardMark) {
			t.Errorf("phone %+v", p)
		}
		s.doctor(t, srv, "PROBLEM phone "+loopMAC.String()+" is held by the "+inventory.LoopGuardMark)
		// The installer clears the loop guard: the status page's action
		// records exactly this event; here it goes into the inventory
		// directly, with the appliance stopped so its flush does not
		// overwrite it.
		srv.Stop()
		inv, err := inventory.Open(inventory.Path(srv.state), inventory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		inv.Record(inventory.Observation{MAC: loopMAC, Event: inventory.Event{Step: inventory.StepAction, Kind: inventory.KindLoopCleared, OK: true, Detail: "loop guard cleared (test)"}})
		if err := inv.Flush(); err != nil {
			t.Fatal(err)
		}
		srv = s.serveRollout(t, "1h", srv.state)
		defer srv.Stop()
		s.getJSON(t, "/api/phones/"+loopMAC.String(), &p)
		if p.State == string(inventory.StateFirmwareLoop) {
			t.Errorf("still held after the release: %+v", p)
		}
		file, image = s.boot(t, loopMAC, simulate.DefaultFirmware)
		wantImage(t, "after the release", file, image)
	})
}
