package provision

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/phone"
)

const base = "http://10.77.0.1:8080"

var macA = mustMAC("000413A11FA7")

func mustMAC(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testConfig is a config as the loader would produce it, built by hand.
func testConfig() *config.Config {
	return &config.Config{
		Server:    config.Server{Advertise: netip.MustParseAddr("10.77.0.1")},
		HTTP:      config.HTTP{Listen: ":8080", UnknownPhones: UnknownGeneric},
		Provision: config.Provision{DefaultPerm: "R", PinSettingServer: config.PinAll},
		Settings: config.Settings{
			"language":  {Value: "English"},
			"user_host": {Indexed: map[int]config.IndexedValue{1: {Value: "pbx.example"}, 2: {Value: "pbx2.example", Perm: "RW"}}},
			"web_note":  {Value: `a & b < c > d "e" ünï`, Perm: "RW"},
		},
		Models: map[string]config.Model{
			"snomD785": {
				Firmware:    "snomD785-10.1.215.13-SIP-r.bin",
				FirmwareUXM: "https://downloads.snom.com/fw/uxm.bin",
				Settings:    config.Settings{"language": {Value: "Deutsch"}},
				FKeys:       config.FKeys{0: {Value: "line"}},
			},
			"snomD345": {Settings: config.Settings{"tone_scheme": {Value: "GER"}}},
		},
		Phones: []config.Phone{{
			MAC:   macA,
			Model: "snomD785",
			Settings: config.Settings{
				"user_name": {Indexed: map[int]config.IndexedValue{1: {Value: "401"}}},
				"user_pass": {Indexed: map[int]config.IndexedValue{1: {Value: "s3cr&t"}}},
			},
			FKeys: config.FKeys{1: {Value: "blf sip:123@10.0.0.1|*8", Label: "Mary", Context: "1", Perm: "RW"}},
		}},
		Phonebook: []config.PhonebookEntry{{Name: "Adrian <A&B>", Number: "42965"}},
	}
}

// The parsed-back shape of a Snom settings file.
type xmlSettings struct {
	XMLName       xml.Name     `xml:"settings"`
	PhoneSettings xmlPhoneSets `xml:"phone-settings"`
	FKeys         *struct {
		E    string    `xml:"e,attr"`
		Keys []xmlFKey `xml:"fkey"`
	} `xml:"functionKeys"`
	TBook *struct {
		Complete string `xml:"complete,attr"`
		Items    []struct {
			Context string `xml:"context,attr"`
			Type    string `xml:"type,attr"`
			Index   string `xml:"index,attr"`
			Name    string `xml:"name"`
			Number  string `xml:"number"`
		} `xml:"item"`
	} `xml:"tbook"`
}

type xmlPhoneSets struct {
	E        string       `xml:"e,attr"`
	Settings []xmlSetting `xml:",any"`
}

type xmlSetting struct {
	XMLName xml.Name
	Idx     string `xml:"idx,attr"`
	Perm    string `xml:"perm,attr"`
	Value   string `xml:",chardata"`
}

type xmlFKey struct {
	Idx     string `xml:"idx,attr"`
	Context string `xml:"context,attr"`
	Label   string `xml:"label,attr"`
	Perm    string `xml:"perm,attr"`
	Value   string `xml:",chardata"`
}

type xmlFirmware struct {
	XMLName  xml.Name `xml:"firmware-settings"`
	Firmware struct {
		Perm  *string `xml:"perm,attr"`
		Value string  `xml:",chardata"`
	} `xml:"firmware"`
	UXM string `xml:"firmware_uxm"`
}

func parseSettings(t *testing.T, b []byte) xmlSettings {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(`<?xml version="1.0" encoding="utf-8"?>`)) {
		t.Fatalf("no UTF-8 XML declaration:\n%s", b)
	}
	var s xmlSettings
	if err := xml.Unmarshal(b, &s); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, b)
	}
	if s.PhoneSettings.E != "2" {
		t.Fatalf(`phone-settings without e="2":\n%s`, b)
	}
	return s
}

// get returns (value, perm) of a setting with idx ("" for plain ones).
func (s xmlSettings) get(name, idx string) (string, string, bool) {
	for _, st := range s.PhoneSettings.Settings {
		if st.XMLName.Local == name && st.Idx == idx {
			return st.Value, st.Perm, true
		}
	}
	return "", "", false
}

func newCatalog(t *testing.T, cfg *config.Config) *Catalog {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGeneralFile(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Config)
		model  string
		want   map[string]string // setting (name or name#idx) -> value; "" means absent
		perm   map[string]string
	}{
		{
			name:  "model with firmware gets pointers and pinned server",
			model: "snomD785",
			want: map[string]string{
				"language":        "Deutsch",
				"setting_server":  base + "/",
				"firmware_status": base + "/snomD785-firmware.htm",
				"update_policy":   "auto_update",
				"user_host#1":     "pbx.example",
				"user_host#2":     "pbx2.example",
				"web_note":        `a & b < c > d "e" ünï`,
			},
			perm: map[string]string{"language": "R", "user_host#2": "RW", "web_note": "RW"},
		},
		{
			name:  "model without firmware has no firmware pointers",
			model: "snomD345",
			want:  map[string]string{"language": "English", "tone_scheme": "GER", "firmware_status": "", "update_policy": "", "setting_server": base + "/"},
		},
		{
			name:  "type not in [models] gets global settings only",
			model: "snomD120",
			want:  map[string]string{"language": "English", "tone_scheme": "", "firmware_status": "", "setting_server": base + "/"},
		},
		{
			name:   "pin_setting_server = false",
			mutate: func(c *config.Config) { c.Provision.PinSettingServer = config.PinOff },
			model:  "snomD785",
			want:   map[string]string{"setting_server": "", "firmware_status": base + "/snomD785-firmware.htm"},
		},
		{
			name: "config overrides update_policy, firmware_status and setting_server",
			mutate: func(c *config.Config) {
				c.Settings["update_policy"] = config.Setting{Value: "ask_for_update"}
				c.Settings["setting_server"] = config.Setting{Value: "http://elsewhere/"}
				m := c.Models["snomD785"]
				m.Settings["firmware_status"] = config.Setting{Value: "http://fw.example/x.htm", Perm: "RW"}
				c.Models["snomD785"] = m
			},
			model: "snomD785",
			want:  map[string]string{"update_policy": "ask_for_update", "firmware_status": "http://fw.example/x.htm", "setting_server": "http://elsewhere/"},
			perm:  map[string]string{"firmware_status": "RW"},
		},
		{
			name:   "default perm from [provision]",
			mutate: func(c *config.Config) { c.Provision.DefaultPerm = "!" },
			model:  "snomD345",
			want:   map[string]string{"language": "English"},
			perm:   map[string]string{"language": "!", "web_note": "RW"},
		},
		{
			name:   "named URL is pinned verbatim",
			mutate: func(c *config.Config) { c.HTTP.URL = "http://prov.example:81/cfg/{phone_type}/{mac}.xml" },
			model:  "snomD785",
			want: map[string]string{
				"setting_server":  "http://prov.example:81/cfg/{phone_type}/{mac}.xml",
				"firmware_status": "http://prov.example:81/snomD785-firmware.htm",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.mutate != nil {
				tt.mutate(cfg)
			}
			c := newCatalog(t, cfg)
			b := c.General(base, tt.model).Body
			if cfg.HTTP.URL != "" {
				b = c.General(c.FixedBase(), tt.model).Body
			}
			s := parseSettings(t, b)
			for key, want := range tt.want {
				name, idx, _ := strings.Cut(key, "#")
				got, _, ok := s.get(name, idx)
				if want == "" {
					if ok {
						t.Errorf("%s = %q, want absent", key, got)
					}
					continue
				}
				if !ok || got != want {
					t.Errorf("%s = %q (present %v), want %q\n%s", key, got, ok, want, b)
				}
			}
			for key, want := range tt.perm {
				name, idx, _ := strings.Cut(key, "#")
				if _, got, _ := s.get(name, idx); got != want {
					t.Errorf("perm of %s = %q, want %q", key, got, want)
				}
			}
			if s.TBook == nil || s.TBook.Complete != "true" || len(s.TBook.Items) != 1 || s.TBook.Items[0].Name != "Adrian <A&B>" ||
				s.TBook.Items[0].Context != "active" || s.TBook.Items[0].Type != "none" || s.TBook.Items[0].Index != "0" {
				t.Errorf("tbook wrong: %+v", s.TBook)
			}
		})
	}
}

func TestGeneralFileRawSyntax(t *testing.T) {
	c := newCatalog(t, testConfig())
	b := string(c.General(base, "snomD785").Body)
	for _, want := range []string{
		`<settings>` + "\n" + `  <phone-settings e="2">`,
		`<setting_server perm="R">http://10.77.0.1:8080/</setting_server>`,
		`<user_host idx="1" perm="R">pbx.example</user_host>`,
		`<web_note perm="RW">a &amp; b &lt; c &gt; d &quot;e&quot; ünï</web_note>`,
		`<functionKeys e="2">`,
		`<fkey idx="0" context="active" perm="R">line</fkey>`,
		`<tbook e="2" complete="true">`,
		`<name>Adrian &lt;A&amp;B&gt;</name>`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("missing %s in\n%s", want, b)
		}
	}
	// Leading settings come first, the rest sorted.
	if i, j := strings.Index(b, "<setting_server"), strings.Index(b, "<language"); i > j {
		t.Errorf("setting_server should precede language:\n%s", b)
	}
}

func TestPhoneFile(t *testing.T) {
	c := newCatalog(t, testConfig())
	d, ok := c.Phone(base, macA)
	if !ok {
		t.Fatal("configured phone not found")
	}
	s := parseSettings(t, d.Body)
	if v, p, _ := s.get("user_pass", "1"); v != "s3cr&t" || p != "R" {
		t.Errorf("user_pass = %q perm %q", v, p)
	}
	if _, _, ok := s.get("language", ""); ok {
		t.Error("phone file must not repeat global settings")
	}
	if s.FKeys == nil || s.FKeys.E != "2" || len(s.FKeys.Keys) != 1 {
		t.Fatalf("fkeys: %+v", s.FKeys)
	}
	if k := s.FKeys.Keys[0]; k != (xmlFKey{Idx: "1", Context: "1", Label: "Mary", Perm: "RW", Value: "blf sip:123@10.0.0.1|*8"}) {
		t.Errorf("fkey = %+v", k)
	}
	if _, ok := c.Phone(base, mustMAC("000413000001")); ok {
		t.Error("unconfigured phone found")
	}
	empty := parseSettings(t, c.EmptyPhone(base).Body)
	if len(empty.PhoneSettings.Settings) != 0 || empty.FKeys != nil {
		t.Errorf("empty phone file has content: %+v", empty)
	}
}

func TestCombinedFile(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.URL = "http://10.77.0.1:8080/cfg/{phone_type}/{mac}.xml"
	c := newCatalog(t, cfg)
	s := parseSettings(t, c.Combined(c.FixedBase(), "snomD785", macA).Body)
	for key, want := range map[string]string{"language": "Deutsch", "user_name#1": "401", "user_pass#1": "s3cr&t", "firmware_status": base + "/snomD785-firmware.htm"} {
		name, idx, _ := strings.Cut(key, "#")
		if got, _, _ := s.get(name, idx); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if s.FKeys == nil || len(s.FKeys.Keys) != 2 {
		t.Errorf("combined fkeys = %+v, want model key 0 and phone key 1", s.FKeys)
	}
	// An unknown phone gets the general file, never someone else's settings.
	other := parseSettings(t, c.Combined(c.FixedBase(), "snomD785", mustMAC("000413000001")).Body)
	if _, _, ok := other.get("user_pass", "1"); ok {
		t.Error("unknown MAC received a configured phone's secret")
	}
}

func TestFirmwareFile(t *testing.T) {
	cfg := testConfig()
	m := cfg.Models["snomD345"]
	m.Firmware = "https://downloads.snom.com/fw/snomD345-10.1-SIP-r.bin?a=1&b=2"
	cfg.Models["snomD345"] = m
	c := newCatalog(t, cfg)
	tests := []struct {
		model, fw, uxm string
		ok             bool
	}{
		{"snomD785", base + "/firmware/snomD785-10.1.215.13-SIP-r.bin", "https://downloads.snom.com/fw/uxm.bin", true},
		{"snomD345", "https://downloads.snom.com/fw/snomD345-10.1-SIP-r.bin?a=1&b=2", "", true},
		{"snomD120", "", "", false},
	}
	for _, tt := range tests {
		d, ok := modelFirmware(c, base, tt.model)
		if ok != tt.ok {
			t.Errorf("%s: ok = %v", tt.model, ok)
			continue
		}
		if !ok {
			continue
		}
		var f xmlFirmware
		if err := xml.Unmarshal(d.Body, &f); err != nil {
			t.Fatalf("%s: %v\n%s", tt.model, err, d.Body)
		}
		if f.Firmware.Value != tt.fw || f.UXM != tt.uxm || f.Firmware.Perm == nil || *f.Firmware.Perm != "" {
			t.Errorf("%s: got %+v\n%s", tt.model, f, d.Body)
		}
	}
}

func TestMasking(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.URL = "http://prov:pw0rd@10.77.0.1/"
	m := cfg.Models["snomD785"]
	m.FirmwareUXM = "https://fw:uxmpass@downloads.example/uxm.bin"
	cfg.Models["snomD785"] = m
	c := newCatalog(t, cfg)
	files, err := c.Files(macA, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, f := range files {
		all += string(f.Body)
	}
	if strings.Contains(all, "s3cr") || strings.Contains(all, "pw0rd") || strings.Contains(all, "uxmpass") {
		t.Errorf("secret in masked output:\n%s", all)
	}
	if !strings.Contains(all, `<user_pass idx="1" perm="R">********</user_pass>`) || !strings.Contains(all, "http://prov:********@10.77.0.1/") {
		t.Errorf("mask missing:\n%s", all)
	}
	files, _ = c.Files(macA, "", "", true)
	if !strings.Contains(string(files[1].Body), "s3cr&amp;t") {
		t.Errorf("showSecrets did not show:\n%s", files[1].Body)
	}
	// The served (cached) bytes are never masked.
	d, _ := c.Phone(c.FixedBase(), macA)
	if !strings.Contains(string(d.Body), "s3cr&amp;t") {
		t.Error("served file masked")
	}
}

func TestFiles(t *testing.T) {
	unknown := mustMAC("000413000001")
	tests := []struct {
		name   string
		url    string
		policy string
		mac    phone.MAC
		model  string
		paths  []string
		err    error
	}{
		{"base URL, configured", "", UnknownGeneric, macA, "", []string{"/snomD785.htm", "/snomD785-000413A11FA7.htm", "/snomD785-firmware.htm"}, nil},
		{"base URL, unknown generic", "", UnknownGeneric, unknown, "snomD345", []string{"/snomD345.htm"}, nil},
		{"base URL, unknown allow", "", UnknownAllow, unknown, "snomD345", []string{"/snomD345.htm", "/snomD345-000413000001.htm"}, nil},
		{"base URL, unknown deny", "", UnknownDeny, unknown, "snomD345", nil, nil},
		{"named URL", "http://h/prov/office.xml", UnknownGeneric, macA, "", []string{"/prov/office.xml", "/prov/office-000413A11FA7.xml", "/snomD785-firmware.htm"}, nil},
		{"directory URL", "http://h/prov/", UnknownGeneric, macA, "", []string{"/prov/snomD785.htm", "/prov/snomD785-000413A11FA7.htm", "/snomD785-firmware.htm"}, nil},
		{"placeholder URL", "http://h/cfg/{phone_type}/{mac}.xml", UnknownGeneric, macA, "", []string{"/cfg/snomD785/000413A11FA7.xml", "/snomD785-firmware.htm"}, nil},
		{"no model", "", UnknownGeneric, unknown, "", nil, ErrNoModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.HTTP.URL, cfg.HTTP.UnknownPhones = tt.url, tt.policy
			c := newCatalog(t, cfg)
			files, err := c.Files(tt.mac, tt.model, "", false)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
				if !bytes.HasPrefix(f.Body, []byte("<?xml")) {
					t.Errorf("%s is not XML", f.Path)
				}
			}
			if strings.Join(paths, " ") != strings.Join(tt.paths, " ") {
				t.Errorf("paths = %v, want %v", paths, tt.paths)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		// Setting names, model names and MACs are config.Parse's rules
		// (config's tests); the URL template is the catalog's.
		{"bad url", func(c *config.Config) { c.HTTP.URL = "ftp://x/" }, `http.url: "ftp://x/" is not an absolute http:// or https:// URL`},
		{"url without host", func(c *config.Config) { c.HTTP.URL = "http:///x.xml" }, "has no host"},
		{"unknown placeholder", func(c *config.Config) { c.HTTP.URL = "http://h/{serial}.xml" }, "unknown placeholder {serial}"},
	}
	for _, tt := range tests {
		cfg := testConfig()
		tt.mutate(cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestBaseCacheBounded(t *testing.T) {
	c := newCatalog(t, testConfig())
	for i := 0; i < 3*maxBases; i++ {
		c.General("http://10.0.0."+strings.Repeat("1", i%5+1)+string(rune('a'+i)), "snomD785")
	}
	c.mu.RLock()
	n, _ := len(c.bases), 0
	_, keptDefault := c.bases[base]
	c.mu.RUnlock()
	if n > maxBases || !keptDefault {
		t.Errorf("bases = %d (max %d), default kept = %v", n, maxBases, keptDefault)
	}
	// The ETag follows the bytes.
	if a, b := c.General(base, "snomD785"), c.General("http://other", "snomD785"); a.ETag == b.ETag {
		t.Error("different bodies share an ETag")
	}
}

func TestEscapingDropsInvalidXML(t *testing.T) {
	cfg := testConfig()
	cfg.Settings["web_note"] = config.Setting{Value: "a\x00b\x1bc\xffd\tok"}
	c := newCatalog(t, cfg)
	s := parseSettings(t, c.General(base, "snomD345").Body)
	if v, _, _ := s.get("web_note", ""); v != "abcd\tok" {
		t.Errorf("web_note = %q", v)
	}
}

func TestFirmwareTarget(t *testing.T) {
	cfg := testConfig()
	cfg.Models["snomD120"] = config.Model{Firmware: "https://downloads.snom.com/fw/10.1.73.4/bin/snomD120-10.1.73.4-SIP-r.bin?x=1"}
	cfg.Models["snomD385"] = config.Model{Firmware: "snomD385-ramdisk-chained-update-r.bin"}
	cfg.Models["snomD717"] = config.Model{Settings: config.Settings{"firmware_status": {Value: "http://other/fw.htm"}}}
	c := newCatalog(t, cfg)
	tests := []struct {
		model, version string
		managed        bool
	}{
		{"snomD785", "10.1.215.13", true},
		{"snomD120", "10.1.73.4", true},
		{"snomD385", "", true},
		{"snomD345", "", false}, // in [models], no firmware
		{"snomD717", "", true},  // points at its own firmware file
		{"snomD999", "", false}, // not in [models]: global settings only
	}
	for _, tt := range tests {
		v, m := c.FirmwareTarget(tt.model)
		if v != tt.version || m != tt.managed {
			t.Errorf("FirmwareTarget(%s) = %q, %v; want %q, %v", tt.model, v, m, tt.version, tt.managed)
		}
	}
}

func TestFirmwareTargetGlobalFirmwareStatus(t *testing.T) {
	cfg := testConfig()
	cfg.Settings["firmware_status"] = config.Setting{Value: "http://fw.example/{mac}.htm"}
	c := newCatalog(t, cfg)
	for _, model := range []string{"snomD345", "snomD999", "snomD785"} {
		if v, managed := c.FirmwareTarget(model); v != "" || !managed {
			t.Errorf("%s with a global firmware_status: %q, %v; want unknown version, managed", model, v, managed)
		}
	}
}

func TestFilesWithBasicAuth(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.Username, cfg.HTTP.Password = "prov", "pw0rd"
	c := newCatalog(t, cfg)
	for _, show := range []bool{false, true} {
		files, err := c.Files(macA, "", base, show)
		if err != nil {
			t.Fatal(err)
		}
		want := "http://prov:********@10.77.0.1:8080/"
		if show {
			want = "http://prov:pw0rd@10.77.0.1:8080/"
		}
		if !strings.Contains(string(files[0].Body), ">"+want+"<") {
			t.Errorf("showSecrets=%v: setting_server not %s:\n%s", show, want, files[0].Body)
		}
	}
}

// pin_setting_server decides which phones are pinned to the appliance: by
// default only phones in [[phones]], in their own file, so a phone another
// system provisions that fetches a general file is never taken over.
func TestPinSettingServer(t *testing.T) {
	unknown := mustMAC("000413BBBBBB")
	tests := []struct {
		policy                    config.PinPolicy
		general, own, unknownFile bool // setting_server present in each
	}{
		{config.PinConfigured, false, true, false},
		{config.PinAll, true, false, true},
		{config.PinOff, false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			cfg := testConfig()
			cfg.Provision.PinSettingServer = tt.policy
			c := newCatalog(t, cfg)
			has := func(b []byte) bool {
				_, _, ok := parseSettings(t, b).get("setting_server", "")
				return ok
			}
			gen := c.General(base, "snomD785").Body
			own, _ := c.Phone(base, macA)
			if got := has(gen); got != tt.general {
				t.Errorf("general file pinned = %v, want %v\n%s", got, tt.general, gen)
			}
			if got := has(own.Body); got != tt.own {
				t.Errorf("own file pinned = %v, want %v\n%s", got, tt.own, own.Body)
			}
			// What an unconfigured phone fetches, as render lists it.
			files, err := c.Files(unknown, "snomD785", base, true)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, f := range files {
				if !strings.HasSuffix(f.Path, "-firmware.htm") {
					got = got || has(f.Body)
				}
			}
			if got != tt.unknownFile {
				t.Errorf("unconfigured phone pinned = %v, want %v", got, tt.unknownFile)
			}
			// Either way a configured phone is pinned exactly once.
			if tt.policy != config.PinOff {
				comb := c.Combined(base, "snomD785", macA).Body
				if !has(comb) {
					t.Errorf("combined file of a configured phone not pinned:\n%s", comb)
				}
			}
		})
	}
}

// A firmware pointer of the config's own comes with auto_update, as the
// appliance's does: with the D-series default (settings_only) the phone
// would never fetch it.
func TestFirmwareStatusGetsUpdatePolicy(t *testing.T) {
	cfg := testConfig()
	cfg.Settings["firmware_status"] = config.Setting{Value: "http://fw.example/snomD345-firmware.xml"}
	b := newCatalog(t, cfg).General(base, "snomD345").Body
	if got, _, _ := parseSettings(t, b).get("update_policy", ""); got != "auto_update" {
		t.Errorf("update_policy = %q, want auto_update\n%s", got, b)
	}
	cfg = testConfig()
	cfg.Settings["firmware_status"] = config.Setting{Value: "http://fw.example/x.xml"}
	cfg.Settings["update_policy"] = config.Setting{Value: "ask_for_update"}
	b = newCatalog(t, cfg).General(base, "snomD345").Body
	if got, _, _ := parseSettings(t, b).get("update_policy", ""); got != "ask_for_update" {
		t.Errorf("the config's own update_policy was replaced: %q", got)
	}
}

// modelFirmware is the firmware file of a type for a phone with no image
// of its own.
func modelFirmware(c *Catalog, base, model string) (Doc, bool) {
	f, ok := c.FirmwareFor(phone.MAC{}, model)
	if !ok {
		return Doc{}, false
	}
	return c.FirmwareDoc(base, f), true
}
