package provision

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
)

// checkTOML loads text as office.toml in a directory that also holds
// files/ (http.files_dir) and ca.pem, builds the catalog and returns the
// positioned errors and warnings.
func checkTOML(t *testing.T, text string) (errs, warns []string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"ca.pem": testCertPEM, "files/gui_lang_DE.xml": "x", "files/extra.xml": "x", "notacert.pem": "hello"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(dir, "office.toml")
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(name)
	if err != nil {
		t.Fatalf("config does not load: %v", err)
	}
	c, err := New(cfg)
	if pe := (*PrepareError)(nil); errors.As(err, &pe) {
		for _, w := range cfg.LocateAll(pe.Warnings) {
			warns = append(warns, strings.TrimPrefix(w.Error(), name))
		}
	}
	for _, e := range cfg.LocateAll(field.List(err)) {
		errs = append(errs, strings.TrimPrefix(e.Error(), name))
	}
	if err != nil && errs == nil {
		t.Fatalf("New: %v", err)
	}
	if c != nil {
		for _, w := range cfg.LocateAll(c.Warnings) {
			warns = append(warns, strings.TrimPrefix(w.Error(), name))
		}
	}
	return errs, warns
}

// TestCheckPositions: every range, family and vocabulary error with its
// place in the file and the valid range in the message.
func TestCheckPositions(t *testing.T) {
	tests := []struct {
		name string
		toml string
		errs []string // ":LINE:COL: key: message substring", in file order
		warn []string
	}{
		{"function key beyond the model's own keys", `
[models.snomD785.fkeys]
0 = "line"
24 = "line"
`, []string{":4:1: models.snomD785.fkeys.24: function key 24 is outside snomD785's range 0-23: 0-23 (snomD785); an expansion module adds 18 keys"}, nil},
		{"module keys count once the module is configured", `
[models.snomD785]
modules = ["D7"]
[models.snomD785.fkeys]
41 = "line"
42 = "line"
`, []string{":6:1: models.snomD785.fkeys.42: function key 42 is outside snomD785's range 0-41: 0-23 (snomD785), 24-41 (D7 #1)"}, nil},
		{"a phone's own modules", `
[models.snomD785]
[[phones]]
mac = "000413000001"
model = "snomD785"
modules = ["D7", "D7C"]
[phones.fkeys]
89 = "line"
90 = "line"
`, []string{":9:1: phones[0].fkeys.90: function key 90 is outside snomD785's range 0-89: 0-23 (snomD785), 24-41 (D7 #1), 42-89 (D7C #2)"}, nil},
		{"module that does not fit", `
[models.snomD785]
modules = ["D7", "D3", "D7", "D7", "X1"]
`, []string{
			":3:18: models.snomD785.modules[1]: snomD785 takes D7 or D7C, not D3",
			":3:30: models.snomD785.modules[3]: snomD785 takes at most 3 modules",
			":3:36: models.snomD785.modules[4]: \"X1\" is not an expansion module",
		}, nil},
		{"module names without a known model", `
[models.snomX1]
modules = ["D7", "D9"]
[[phones]]
mac = "000413000001"
modules = ["snomD785"]
`, []string{
			":3:18: models.snomX1.modules[1]: \"D9\" is not an expansion module; the catalogue knows D3, D7, D7C, D8C",
			":6:12: phones[0].modules[0]: \"snomD785\" is not an expansion module",
		}, []string{":2:1: models.snomX1: snomX1 is not in the model catalogue"}},
		{"function keys on a conference phone", `
[models.snomC520.fkeys]
0 = "line"
`, []string{":3:1: models.snomC520.fkeys.0: snomC520 has no free function keys (it reads no <functionKeys>)"}, nil},
		{"line index beyond identities", `
[models.snomD305.settings]
user_name = { 1 = "1", 4 = "4", 5 = "5" }
`, []string{":3:33: models.snomD305.settings.user_name.5: identity 5 is beyond snomD305's SIP identities (idx 1-4)"}, nil},
		{"global setting beyond one configured model's identities: a warning", `
[settings]
user_host = { 5 = "pbx" }
[models.snomD305]
[models.snomD785]
`, nil, []string{":3:15: settings.user_host.5: identity 5 is beyond snomD305's SIP identities (idx 1-4): a global setting reaches [models.snomD305] too, where it has no effect"}},
		{"function key context beyond identities", `
[models.snomD305.fkeys]
0 = { value = "line", context = "5" }
`, []string{":3:23: models.snomD305.fkeys.0.context: context \"5\" is not \"active\" or an identity of snomD305 (1-4)"}, nil},
		{"container the device does not read", `
[models.snomM900]
[[models.snomM900.dialplan]]
match = "0"
`, []string{":3:1: models.snomM900.dialplan: snomM900 does not read <dialplan>"}, nil},
		{"global container a configured model does not read is a warning", `
[[dialplan]]
match = "0"
[models.snomM900]
`, nil, []string{":2:1: dialplan: snomM900 does not read <dialplan> (it reads phone-settings, firmware-settings); remove it: it is left out of snomM900's file"}},
		{"desk firmware for a DECT base", `
[models.snomM900]
firmware = "http://fw/snomD785-10.1.73.4-SIP-r.bin"
`, []string{":3:1: models.snomM900.firmware: snomM900 is a DECT base: it takes firmware through [models.snomM900.dect]"}, nil},
		{"DECT firmware for a desk phone", `
[models.snomD785.dect]
version = "0740"
`, []string{":2:1: models.snomD785.dect: snomD785 is not a DECT base"}, nil},
		{"image of another type and of another kind", `
[models.snomD735]
firmware = "http://fw/snomD785-10.1.73.4-SIP-r.bin"
[models.snomD865]
firmware = "http://fw/snomD865-10.1.73.4-SIP-r.bin"
[models.snomD305]
firmware_uxm = "http://fw/snomD7-1.0.bin"
`, []string{
			":3:1: models.snomD735.firmware: snomD785-10.1.73.4-SIP-r.bin is an image for snomD785, not for snomD735",
			":5:1: models.snomD865.firmware: snomD865 takes a .swu image; snomD865-10.1.73.4-SIP-r.bin is a .bin image",
			":7:1: models.snomD305.firmware_uxm: snomD305 takes no expansion modules",
		}, nil},
		{"phone without model that fits some of its models: a warning", `
[models.snomD785]
[models.snomD305]
[[phones]]
mac = "000413000001"
[phones.fkeys]
10 = "line"
`, nil, []string{":7:1: phones[0].fkeys.10: function key 10 is outside snomD305's range 0-4: 0-4 (snomD305); the phone has no model: it fits snomD785 but not snomD305; set model to check it"}},
		{"phone without model that fits none: an error (and the warnings found too)", `
[models.snomD785]
[models.snomD305]
[[phones]]
mac = "000413000001"
[phones.fkeys]
10 = "line"
30 = "line"
`, []string{":8:1: phones[0].fkeys.30: no model this phone may be (it has no model: snomD305, snomD785) takes it: function key 30 is outside snomD305's range 0-4"},
			[]string{":7:1: phones[0].fkeys.10: function key 10 is outside snomD305's range"}},
		{"phone without model and no [models]: every device of the catalogue", `
[[phones]]
mac = "000413000001"
[phones.fkeys]
500 = "line"
`, []string{":5:1: phones[0].fkeys.500: no model this phone may be (it has no model: snomD120, snomD140, snomD150, snomD305, snomD315, snomD335 and 37 more) takes it"}, nil},
		{"unknown snom types are allowed with a warning", `
[models.snomX1.fkeys]
999 = "line"
[[phones]]
mac = "000413000001"
model = "snomX2"
`, nil, []string{
			":2:9: models.snomX1: snomX1 is not in the model catalogue (snomprov models); its function keys, identities and containers could not be checked",
			":6:1: phones[0].model: snomX2 is not in the model catalogue",
		}},
		{"vocabulary", `
certificates = ["notacert.pem", "missing.pem"]
setting_files = ["nothere.xml"]
xml = "<a><b></a>"
replacement_plan = "<key id='x'>"
gui_languages = ["Klingon", { name = "X", file = "x.xml" }]
phonebook_mode = "merge"
[[dialplan]]
user = "sip"
[[uploads]]
file = "extra.xml"
[models.snomD785]
[[models.snomD785.phonebook]]
name = "no number"
`, []string{
			":2:17: certificates[0]: ",
			":2:33: certificates[1]: cannot read",
			":3:18: setting_files[0]: nothere.xml not found in http.files_dir",
			":4:1: xml: not well-formed XML: element <b> closed by </a>",
			":5:1: replacement_plan: not well-formed XML: element <key> is never closed",
			":6:18: gui_languages[0]: \"Klingon\" is not a language snomprov knows the file of",
			":6:43: gui_languages[1].file: a gui language file is named gui_lang_<name>.xml",
			":7:1: phonebook_mode: \"merge\" is not allowed",
			":8:1: dialplan[0].match: a dial plan rule needs a match pattern",
			":9:1: dialplan[0].user: \"sip\" is not a dial plan User",
			":10:1: uploads[0].type: an upload needs a type",
			":13:1: models.snomD785.phonebook[0].number: a phonebook entry needs a number",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// [http] goes last, so the cases' line numbers are as written.
			text := tt.toml + "\n[http]\nfiles_dir = \"files\"\n"
			errs, warns := checkTOML(t, text)
			compare(t, "error", errs, tt.errs)
			compare(t, "warning", warns, tt.warn)
		})
	}
}

func compare(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d %ss, want %d:\n%s", len(got), what, len(want), strings.Join(got, "\n"))
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) && !strings.Contains(got[i], want[i]) {
			t.Errorf("%s %d:\n got %s\nwant %s", what, i, got[i], want[i])
		}
	}
}
