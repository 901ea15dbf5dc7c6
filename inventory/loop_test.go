package inventory

import (
	"strings"
	"testing"
	"time"
)

func TestFirmwareLoop(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	img := func(min int, path string) Event {
		return Event{Time: t0.Add(time.Duration(min) * time.Minute), Step: StepFirmwareImage, Kind: HTTPKind(200), OK: true, Detail: "GET " + path + " 200 1048576B"}
	}
	const bin = "/firmware/snomD785-10.1.73.4-SIP-r.bin"
	cleared := Event{Time: t0.Add(50 * time.Minute), Step: StepAction, Kind: KindLoopCleared, OK: true, Detail: "loop guard cleared by admin"}
	held := Event{Time: t0.Add(40 * time.Minute), Step: StepFirmwareFile, Kind: HTTPKind(200), OK: true,
		Detail: "GET /snomD785-firmware.htm 200: " + LoopGuardMark + "it downloaded x 3 times"}
	for _, c := range []struct {
		name     string
		firmware string
		events   []Event
		held     bool
	}{
		{"none", "10.1.33.33", nil, false},
		{"two downloads", "10.1.33.33", []Event{img(0, bin), img(10, bin)}, false},
		{"three in the window", "10.1.33.33", []Event{img(0, bin), img(10, bin), img(20, bin)}, true},
		{"three spread over more than the window", "10.1.33.33", []Event{img(0, bin), img(40, bin), img(80, bin)}, false},
		{"three, the last three within the window", "10.1.33.33", []Event{img(0, bin), img(70, bin), img(80, bin), img(90, bin)}, true},
		{"three but it runs the image now", "10.1.73.4", []Event{img(0, bin), img(10, bin), img(20, bin)}, false},
		{"three of different images", "10.1.33.33", []Event{img(0, bin), img(10, "/firmware/snomD785-10.1.80.0-SIP-r.bin"), img(20, bin)}, false},
		{"HEAD and 206 do not count", "10.1.33.33", []Event{img(0, bin), img(10, bin),
			{Time: t0.Add(15 * time.Minute), Step: StepFirmwareImage, Kind: HTTPKind(206), OK: true, Detail: "GET " + bin + " 206 10B"},
			{Time: t0.Add(16 * time.Minute), Step: StepFirmwareImage, Kind: HTTPKind(200), OK: true, Detail: "HEAD " + bin + " 200 0B"}}, false},
		{"a refused download does not count", "10.1.33.33", []Event{img(0, bin), img(10, bin),
			{Time: t0.Add(15 * time.Minute), Step: StepFirmwareImage, Kind: HTTPKind(404), OK: false, Detail: "GET " + bin + " 404: no such file"}}, false},
		{"cleared after tripping", "10.1.33.33", []Event{img(0, bin), img(10, bin), img(20, bin), held, cleared}, false},
		{"cleared, then two more", "10.1.33.33", []Event{img(0, bin), img(10, bin), img(20, bin), cleared, img(55, bin), img(56, bin)}, false},
		{"cleared, then three more", "10.1.33.33", []Event{img(0, bin), img(10, bin), img(20, bin), cleared, img(55, bin), img(56, bin), img(57, bin)}, true},
		{"held answer keeps it held once the downloads are gone", "10.1.33.33", []Event{held}, true},
		{"a path cannot forge the mark", "10.1.33.33", []Event{
			{Time: t0, Step: StepFirmwareImage, Kind: HTTPKind(404), Detail: "GET /firmware/a 200 1B: " + LoopGuardMark + "x 404: no such file"},
			{Time: t0, Step: StepFile, Kind: HTTPKind(404), Detail: "GET /x: " + LoopGuardMark + "x 404: no such file"}}, false},
		{"a failed clear does not release", "10.1.33.33", []Event{held, {Time: t0.Add(time.Hour), Step: StepAction, Kind: KindLoopCleared, OK: false}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Phone{Firmware: c.firmware, Events: c.events, Steps: map[Step]StepResult{}}
			got, reason := p.FirmwareLoop()
			if got != c.held {
				t.Fatalf("held = %v (%q), want %v", got, reason, c.held)
			}
			if got != strings.HasPrefix(reason, LoopGuardMark) {
				t.Errorf("reason %q", reason)
			}
			st, why := p.State(t0.Add(2*time.Hour), 0)
			if (st == StateFirmwareLoop) != c.held || (c.held && why != reason) {
				t.Errorf("State = %s (%q)", st, why)
			}
		})
	}
}

func TestRequestPath(t *testing.T) {
	for _, c := range []struct{ in, method, path string }{
		{"GET /firmware/a.bin 200 12B", "GET", "/firmware/a.bin"},
		{"HEAD /x 404: why", "HEAD", "/x"},
		{"ACK 10.0.0.5", "", ""},
		{"", "", ""},
		{"GET", "", ""},
	} {
		if m, p := RequestPath(c.in); m != c.method || p != c.path {
			t.Errorf("RequestPath(%q) = %q %q", c.in, m, p)
		}
	}
}

// FuzzFirmwareLoop: any stored timeline (details are free text from the
// file or the database) gives an answer, and a held phone always says why.
func FuzzFirmwareLoop(f *testing.F) {
	f.Add("GET /firmware/snomD785-10.1.73.4-SIP-r.bin 200 9B", "10.1.33.33", 3, false)
	f.Add("GET /x 200 1B: "+LoopGuardMark+"held", "", 1, true)
	f.Add("HEAD", "1.2", 5, false)
	f.Fuzz(func(t *testing.T, detail, firmware string, n int, cleared bool) {
		n = n % 8
		p := Phone{Firmware: firmware}
		t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		for i := range max(n, 0) {
			p.Events = append(p.Events, Event{Time: t0.Add(time.Duration(i) * time.Minute), Step: StepFirmwareImage, Kind: HTTPKind(200), OK: true, Detail: detail})
		}
		if cleared {
			p.Events = append(p.Events, Event{Time: t0.Add(time.Hour), Step: StepAction, Kind: KindLoopCleared, OK: true})
		}
		held, reason := p.FirmwareLoop()
		if held != strings.HasPrefix(reason, LoopGuardMark) || (cleared && held) {
			t.Fatalf("held %v, %q", held, reason)
		}
		m, path := RequestPath(detail)
		if (m == "") != (path == "") && path != "" {
			t.Fatalf("RequestPath(%q) = %q %q", detail, m, path)
		}
	})
}
