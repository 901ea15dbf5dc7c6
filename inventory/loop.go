package inventory

import (
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// The firmware loop guard: a phone that downloaded the same image
// LoopFetches times within LoopWindow, and still does not report the
// image's version, is held: it gets no firmware until an installer
// releases it with a KindLoopCleared action (the status page's button).
const (
	LoopFetches = 3
	LoopWindow  = time.Hour
)

// LoopGuardMark starts the detail of every answer the loop guard gave in
// place of firmware. Such an event keeps the phone held even once the
// downloads that tripped the guard have left its timeline.
const LoopGuardMark = "firmware loop guard: "

// RequestPath is the path of an HTTP event's detail, as the HTTP server
// writes it ("GET /firmware/x.bin 200 812B"); empty for other details.
func RequestPath(detail string) (method, path string) {
	method, rest, ok := strings.Cut(detail, " ")
	if !ok || (method != "GET" && method != "HEAD") {
		return "", ""
	}
	path, _, _ = strings.Cut(rest, " ")
	return method, path
}

// requestReason is what an HTTP event's detail says after its status
// ("GET /p 200 12B: why" → "why"); empty when it says nothing more.
func requestReason(detail string) string {
	method, path := RequestPath(detail)
	if method == "" {
		return ""
	}
	rest := detail[len(method)+1+len(path):]
	_, reason, _ := strings.Cut(rest, ": ")
	return reason
}

// FirmwareLoop reports whether the loop guard holds the phone, with the
// reason (which starts with LoopGuardMark). Only what happened since the
// phone's last KindLoopCleared action counts; then the count starts over.
// Only the images this appliance serves (under /firmware/) are counted.
func (p Phone) FirmwareLoop() (held bool, reason string) {
	from := 0
	for i := len(p.Events) - 1; i >= 0; i-- {
		if e := p.Events[i]; e.Step == StepAction && e.Kind == KindLoopCleared && e.OK {
			from = i + 1
			break
		}
	}
	events := p.Events[from:]
	var fetches map[string][]time.Time
	for _, e := range events {
		if e.Step == StepFirmwareFile && e.OK {
			// Held before (the firmware file the guard answered with), and
			// not released since. Only the firmware file's detail counts:
			// its path is a fixed pattern, so no requested path can forge
			// the mark.
			if reason := requestReason(e.Detail); strings.HasPrefix(reason, LoopGuardMark) {
				return true, reason
			}
		}
		if e.Step != StepFirmwareImage || !e.OK || e.Kind != HTTPKind(200) {
			continue
		}
		method, path := RequestPath(e.Detail)
		if method != "GET" || path == "" {
			continue
		}
		if fetches == nil {
			fetches = map[string][]time.Time{}
		}
		fetches[path] = append(fetches[path], e.Time)
	}
	for path, times := range fetches {
		if len(times) < LoopFetches {
			continue
		}
		version := phone.ImageVersion(path)
		if version != "" && p.Firmware == version {
			continue // it runs the image: the downloads worked
		}
		for i := 0; i+LoopFetches-1 < len(times); i++ {
			if times[i+LoopFetches-1].Sub(times[i]) <= LoopWindow {
				running := p.Firmware
				if running == "" {
					running = "unknown"
				}
				return true, LoopGuardMark + "it downloaded " + phone.ImageName(path) + " " + strconv.Itoa(len(times)) +
					" times (" + strconv.Itoa(LoopFetches) + " within " + LoopWindow.String() + ") and still reports firmware " + running +
					"; it gets no firmware until the loop guard is cleared (status page)"
			}
		}
	}
	return false, ""
}
