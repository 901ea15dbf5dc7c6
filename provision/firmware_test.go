package provision

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

const fleetTOML = `
[models.snomD785]
firmware = "http://fw/snomD785-10.1.73.4-SIP-r.bin"
canaries = ["000413000001"]
[models.snomD717]
[groups.sales]
firmware = "http://fw/snomD785-10.1.80.0-SIP-r.bin"
phones = ["000413000003"]
canaries = ["000413000003"]
canary_timeout = "30m"
[groups.lab]
firmware = "http://fw/snomD717-10.1.90.0-SIP-r.bin"
[[phones]]
mac = "000413000001"
model = "snomD785"
[[phones]]
mac = "000413000002"
model = "snomD785"
firmware = "http://fw/snomD785-10.1.60.0-SIP-r.bin"
group = "sales"
[[phones]]
mac = "000413000003"
model = "snomD785"
[[phones]]
mac = "000413000004"
model = "snomD717"
group = "lab"
`

func mac(n byte) phone.MAC { return phone.MAC{0, 4, 0x13, 0, 0, n} }

// TestFirmwarePrecedence: a phone's own image wins over its group's,
// which wins over its model's; the rollout comes with the scope.
func TestFirmwarePrecedence(t *testing.T) {
	cfg, err := config.Parse("fleet.toml", []byte(fleetTOML))
	if err != nil {
		t.Fatal(err)
	}
	c := newCatalog(t, cfg)
	for _, tt := range []struct {
		mac      phone.MAC
		model    string
		image    string
		scope    string
		canaries int // 0: no rollout
	}{
		{mac(1), "snomD785", "snomD785-10.1.73.4-SIP-r.bin", "models.snomD785", 1},
		{mac(2), "snomD785", "snomD785-10.1.60.0-SIP-r.bin", "phones[1]", 0},
		{mac(3), "snomD785", "snomD785-10.1.80.0-SIP-r.bin", "groups.sales", 1},
		{mac(4), "snomD717", "snomD717-10.1.90.0-SIP-r.bin", "groups.lab", 0},
		{mac(9), "snomD785", "snomD785-10.1.73.4-SIP-r.bin", "models.snomD785", 1}, // not configured
		{mac(9), "snomD717", "", "", 0},
	} {
		f, ok := c.FirmwareFor(tt.mac, tt.model)
		if tt.image == "" {
			if ok {
				t.Errorf("%s %s: got %+v, want none", tt.mac, tt.model, f)
			}
			continue
		}
		if !ok || phone.ImageName(f.Image) != tt.image || f.Scope != tt.scope || (f.Rollout != nil) != (tt.canaries > 0) {
			t.Errorf("%s %s: got %+v, want %s from %s", tt.mac, tt.model, f, tt.image, tt.scope)
			continue
		}
		if !strings.Contains(string(c.FirmwareDoc(base, f).Body), tt.image) {
			t.Errorf("%s: firmware file does not point at %s", tt.mac, tt.image)
		}
		if v, _ := c.FirmwareTargetFor(tt.mac, tt.model); v != phone.ImageVersion(tt.image) {
			t.Errorf("%s: target %s", tt.mac, v)
		}
	}
	if r := c.Rollouts(); len(r) != 2 || r[0].Scope != "groups.sales" || r[0].Timeout.Minutes() != 30 || r[1].Scope != "models.snomD785" || r[1].Timeout.Hours() != 1 {
		t.Errorf("rollouts %+v", r)
	}
	// snomD717 has no firmware of its own: the lab phone's own file points
	// it at its firmware file; the general file does not.
	own, _ := c.Phone(base, mac(4))
	if !strings.Contains(string(own.Body), "<firmware_status perm=\"R\">"+base+"/snomD717-firmware.htm</firmware_status>") ||
		!strings.Contains(string(own.Body), "auto_update") {
		t.Errorf("lab phone's file has no firmware pointer:\n%s", own.Body)
	}
	if gen := c.General(base, "snomD717"); strings.Contains(string(gen.Body), "firmware_status") {
		t.Errorf("snomD717's general file points at firmware:\n%s", gen.Body)
	}
	if own, _ := c.Phone(base, mac(1)); strings.Contains(string(own.Body), "firmware_status") {
		t.Errorf("a phone on its model's image got its own pointer:\n%s", own.Body)
	}
	keep := string(c.KeepFirmware("held: canary 000413000001 -- gone").Body)
	if strings.Contains(keep, "<firmware ") || !strings.Contains(keep, "<firmware-settings>\n  <!-- held: canary 000413000001 - - gone -->\n</firmware-settings>") {
		t.Errorf("keep file: %s", keep)
	}
}

// TestFirmwareChecks: what an installer gets wrong, each an error at its
// key (or a warning where it still works).
func TestFirmwareChecks(t *testing.T) {
	for _, tt := range []struct {
		name        string
		toml        string
		errs, warns []string
	}{
		{"two groups", `
[groups.a]
phones = ["000413000001"]
[groups.b]
phones = ["000413000001"]
[[phones]]
mac = "000413000001"
`, []string{":5:11: groups.b.phones[0]: 000413000001 is also in groups.a; a phone is in one group"}, nil},
		{"group key and another group's list", `
[groups.a]
phones = ["000413000001"]
[groups.b]
[[phones]]
mac = "000413000001"
group = "b"
`, []string{":7:1: phones[0].group: the phone is in groups.a (its phones list); a phone is in one group"}, nil},
		{"unknown group", `
[groups.sales]
[[phones]]
mac = "000413000001"
group = "sale"
`, []string{":5:1: phones[0].group: there is no [groups.sale]; the groups are sales"}, nil},
		{"unconfigured member", `
[groups.a]
phones = ["000413000009"]
`, []string{":3:11: groups.a.phones[0]: 000413000009 is not in [[phones]] or a phones CSV"}, nil},
		{"group image of another type than a member", `
[groups.a]
firmware = "http://fw/snomD785-10.1.80.0-SIP-r.bin"
[[phones]]
mac = "000413000001"
model = "snomD717"
group = "a"
`, []string{":3:1: groups.a.firmware: snomD785-10.1.80.0-SIP-r.bin is an image for snomD785, not for snomD717 (for member 000413000001, phones[0])"}, nil},
		{"phone image with no type to tell", `
[[phones]]
mac = "000413000001"
firmware = "http://fw/firmware.bin"
`, []string{":2:1: phones[0].model: firmware.bin's name names no phone type"}, nil},
		{"phone image missing from firmware_dir", `
[http]
firmware_dir = "."
[[phones]]
mac = "000413000001"
firmware = "snomD785-10.1.80.0-SIP-r.bin"
`, []string{":6:1: phones[0].firmware: firmware file snomD785-10.1.80.0-SIP-r.bin not found in firmware_dir "}, nil},
		{"canaries without an image", `
[models.snomD785]
canaries = ["000413000001"]
`, []string{":3:1: models.snomD785.canaries: canaries try a new image first, but models.snomD785 has no firmware"}, nil},
		{"canary image without a version", `
[models.snomD785]
firmware = "http://fw/snomD785-latest.bin"
canaries = ["000413000001"]
`, []string{":3:1: models.snomD785.firmware: a rollout with canaries needs the image's version in its name"}, nil},
		{"canary of another model or scope", `
[models.snomD785]
firmware = "http://fw/snomD785-10.1.73.4-SIP-r.bin"
canaries = ["000413000001", "000413000002", "000413000002"]
[groups.g]
firmware = "http://fw/snomD785-10.1.80.0-SIP-r.bin"
canaries = ["000413000003"]
[[phones]]
mac = "000413000001"
model = "snomD717"
[[phones]]
mac = "000413000002"
firmware = "http://fw/snomD785-10.1.60.0-SIP-r.bin"
[[phones]]
mac = "000413000003"
`, []string{
			":4:45: models.snomD785.canaries[2]: 000413000002 is listed twice",
			":4:13: models.snomD785.canaries[0]: 000413000001 cannot be a canary of models.snomD785: it is a snomD717",
			":4:29: models.snomD785.canaries[1]: 000413000002 cannot be a canary of models.snomD785: it has its own firmware",
			":7:13: groups.g.canaries[0]: 000413000003 cannot be a canary of groups.g: it is not in the group",
		}, nil},
		{"canary_timeout alone", `
[models.snomD785]
firmware = "http://fw/snomD785-10.1.73.4-SIP-r.bin"
canary_timeout = "2h"
`, nil, []string{":4:1: models.snomD785.canary_timeout: canary_timeout without canaries does nothing"}},
		{"group firmware for a model with none of its own is fine", `
[groups.g]
firmware = "http://fw/snomD717-10.1.80.0-SIP-r.bin"
[[phones]]
mac = "000413000001"
group = "g"
`, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errs, warns := checkTOML(t, tt.toml)
			matchPrefixes(t, "error", errs, tt.errs)
			matchPrefixes(t, "warning", warns, tt.warns)
		})
	}
}

// matchPrefixes wants each of want as a prefix of one of got, and nothing else.
func matchPrefixes(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%ss:\n%s\nwant %d", what, strings.Join(got, "\n"), len(want))
		return
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no %s %q in\n%s", what, w, strings.Join(got, "\n"))
		}
	}
}

// TestFirmwareChecksInCSV: a CSV row's group and firmware problems are
// reported at their cells, FILE:LINE:COL: column.
func TestFirmwareChecksInCSV(t *testing.T) {
	dir := t.TempDir()
	csv := "mac;model;group;firmware\n" +
		"000413000001;snomD785;sale;\n" +
		"000413000002;snomD717;;http://fw/snomD785-10.1.80.0-SIP-r.bin\n" +
		"000413000003;snomD785;sales;\n"
	toml := "phones_csv = [\"p.csv\"]\n[groups.sales]\nfirmware = \"http://fw/snomD785-10.1.80.0-SIP-r.bin\"\n"
	for name, body := range map[string]string{"p.csv": csv, "office.toml": toml} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "office.toml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg)
	var got []string
	for _, e := range cfg.LocateAll(field.List(err)) {
		got = append(got, strings.TrimPrefix(e.Error(), dir+"/"))
	}
	matchPrefixes(t, "error", got, []string{
		"p.csv:2:23: group: there is no [groups.sale]; the groups are sales",
		"p.csv:3:24: firmware: snomD785-10.1.80.0-SIP-r.bin is an image for snomD785, not for snomD717",
	})
}
