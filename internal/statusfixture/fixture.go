// Package statusfixture is the status page's test fixture: a real
// inventory store holding one phone in each state a person must tell
// apart, and a preview with a secret the page must mask. status's own
// tests and the browser test (test/browser, its own module so chromedp
// stays out of the product's go.mod) render the same page from it.
package statusfixture

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// Now is the fixture's clock.
var Now = time.Date(2026, 11, 25, 14, 30, 0, 0, time.UTC)

// The fixture's phones, one per state.
var (
	MACUpToDate = mustMAC("000413A11FA7")
	MACFailed   = mustMAC("000413B00002")
	MACStale    = mustMAC("000413C00003")
	MACPnP      = mustMAC("000413D00004")
	MACSeen     = mustMAC("000413E00005")
)

// FailReason is why MACFailed's own file failed.
const FailReason = "per-MAC file 404: MAC not in config"

func mustMAC(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Store returns a real inventory store holding the phones at Now.
func Store(t testing.TB) *inventory.Store {
	t.Helper()
	s, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(m phone.MAC, model, fw, ip string, ago time.Duration, step inventory.Step, kind inventory.Kind, ok bool, detail string) {
		o := inventory.Observation{MAC: m, Model: model, Firmware: fw,
			Event: inventory.Event{Time: Now.Add(-ago), Step: step, Kind: kind, OK: ok, Detail: detail}}
		if ip != "" {
			o.IP = netip.MustParseAddr(ip)
		}
		s.Record(o)
	}
	// Up to date: the whole boot sequence.
	rec(MACUpToDate, "", "", "10.77.0.101", 10*time.Minute, inventory.StepDHCP, "ACK", true, "leased 10.77.0.101")
	rec(MACUpToDate, "snomD785", "", "10.77.0.101", 10*time.Minute, inventory.StepPnP, "NOTIFY-ACKED", true, "NOTIFY acknowledged")
	rec(MACUpToDate, "snomD785", "10.1.33.33", "10.77.0.101", 9*time.Minute, inventory.StepGeneral, "200", true, "/snomD785.htm")
	rec(MACUpToDate, "snomD785", "10.1.33.33", "10.77.0.101", 9*time.Minute, inventory.StepPhone, "200", true, "/snomD785-000413A11FA7.htm")
	rec(MACUpToDate, "snomD785", "10.1.33.33", "10.77.0.101", 9*time.Minute, inventory.StepFirmwareFile, "200", true, "/snomD785-firmware.htm")
	rec(MACUpToDate, "snomD785", "10.1.33.33", "10.77.0.101", 8*time.Minute, inventory.StepFirmwareImage, "200", true, "/firmware/snomD785-10.1.33.33.bin")
	// Failed on the per-MAC file.
	rec(MACFailed, "", "", "10.77.0.102", 5*time.Minute, inventory.StepDHCP, "ACK", true, "leased 10.77.0.102")
	rec(MACFailed, "snomD735", "10.1.20.1", "10.77.0.102", 4*time.Minute, inventory.StepGeneral, "200", true, "/snomD735.htm")
	rec(MACFailed, "snomD735", "10.1.20.1", "10.77.0.102", 4*time.Minute, inventory.StepPhone, "404", false, FailReason)
	// Stale: leased three days ago, never again.
	rec(MACStale, "snomD120", "", "10.77.0.103", 72*time.Hour, inventory.StepDHCP, "ACK", true, "leased 10.77.0.103")
	// PnP answered, no settings fetched yet.
	rec(MACPnP, "snomD717", "10.1.33.33", "10.77.0.104", 30*time.Second, inventory.StepPnP, "NOTIFY-ACKED", true, "NOTIFY acknowledged")
	// Only an untracked file request.
	rec(MACSeen, "snomD385", "", "10.77.0.105", 2*time.Minute, inventory.StepFile, "200", true, "/gui_lang.xml")
	return s
}

// File has status.File's fields (status converts it), so this package
// need not import status, whose tests import it.
type File struct {
	Path string
	Body []byte
}

// Preview returns files with an unmasked secret, to prove the page's own
// masking pass, and fails for an unknown model.
func Preview(mac phone.MAC, model string) ([]File, error) {
	if model == "" {
		return nil, errors.New("phone type unknown for " + mac.String() + ": give the model")
	}
	return []File{
		{Path: "/" + model + ".htm", Body: []byte(`<settings><phone-settings><setting_server perm="R">http://admin:hunter2@10.77.0.1:8080/</setting_server></phone-settings></settings>`)},
		{Path: "/" + model + "-" + mac.String() + ".htm", Body: []byte(`<settings><phone-settings><user_name idx="1" perm="R">101</user_name><user_pass idx="1" perm="R">s3cr3t-sip</user_pass><http_pass perm="R">********</http_pass></phone-settings></settings>`)},
		{Path: "/firmware.bin", Body: []byte{0xff, 0xfe, 0x00, 0x01}},
	}, nil
}

// Pool is one subnet's DHCP pool, as status.Pool.
type Pool struct {
	Subnet      string
	LAN         bool
	Used, Total int
}

// Pools are the DHCP pools the overview shows: the LAN's, 37 of 100.
func Pools() ([]Pool, bool) {
	return []Pool{{Subnet: "10.77.0.0/24", LAN: true, Used: 37, Total: 100}}, true
}

// StaleAfter is the status.stale_after the fixture's states assume.
const StaleAfter = 24 * time.Hour
