package provision

import (
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
)

// node is any XML element, for parsing files back.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []node     `xml:",any"`
}

func parseNode(t *testing.T, b []byte) node {
	t.Helper()
	var n node
	if err := xml.Unmarshal(b, &n); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, b)
	}
	return n
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n node) has(name string) bool {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return true
		}
	}
	return false
}

// all returns the children named name.
func (n node) all(name string) []node {
	var out []node
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

// one returns the only child named name.
func (n node) one(t *testing.T, name string) node {
	t.Helper()
	all := n.all(name)
	if len(all) != 1 {
		t.Fatalf("want one <%s> in <%s>, got %d", name, n.XMLName.Local, len(all))
	}
	return all[0]
}

// scoped returns a config whose files_dir holds every file the tests name.
func scopedConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := testConfig()
	dir := t.TempDir()
	for _, f := range []string{"extra.xml", "gui_lang_DE.xml", "web_lang_DE.xml", "gui_lang_Custom.xml", "brand.tar"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.HTTP.FilesDir = dir
	return cfg
}

const testCertPEM = `-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIURBRRzuB3a49mdfHIDaNu1R/oSNcwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNT2ZmaWNlIFBCWCBDQTAgFw0yNjEyMDcwOTI2MjhaGA8yMTI2
MTExMzA5MjYyOFowGDEWMBQGA1UEAwwNT2ZmaWNlIFBCWCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABIOz90KIfQn62jtyzVrajbjsUVtFZuNnFImOSJC6JvWw
zEdfu8vDTdBAkjJEjQ7iZk9/UsZ/rj6OsxCc9wiVelKjUzBRMB0GA1UdDgQWBBQI
WEzz2hKpwONNgetanP35Asd6UzAfBgNVHSMEGDAWgBQIWEzz2hKpwONNgetanP35
Asd6UzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQC5Auc4t5ru
RSa1PiWs9R4u92sGN5MzAUX6YClXbncOlQIgAawZ4XAS4ZefGUQap5NA6Bw0p7Ni
nXAo+lxgHLFKCY0=
-----END CERTIFICATE-----
`

// TestContainers: every container and attribute, at the scope it is set,
// rendered and parsed back with encoding/xml.
func TestContainers(t *testing.T) {
	certDir := t.TempDir()
	certFile := filepath.Join(certDir, "ca.pem")
	if err := os.WriteFile(certFile, []byte(testCertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(testCertPEM))
	certB64 := base64.StdEncoding.EncodeToString(block.Bytes)

	tests := []struct {
		name  string
		edit  func(*config.Config)
		file  func(*Catalog) []byte // the document to parse
		check func(t *testing.T, doc node)
	}{
		{"dialplan", func(c *config.Config) {
			c.Dialplan = []config.DialplanRule{{Match: "9,0", Timeout: config.Seconds{N: 1, Set: true}, User: "phone"}, {Match: "110", Timeout: config.Seconds{Set: true}, Rewrite: "0110"}, {Match: "*"}}
		}, general, func(t *testing.T, doc node) {
			dp := doc.one(t, "dialplan")
			rules := dp.all("TEMPLATE")
			if dp.attr("e") != "2" || len(rules) != 3 {
				t.Fatalf("dialplan %+v", dp)
			}
			if r := rules[0]; r.attr("MATCH") != "9,0" || r.attr("Timeout") != "1" || r.attr("User") != "phone" || r.has("Rewrite") {
				t.Errorf("rule 0: %+v", r.Attrs)
			}
			if r := rules[1]; r.attr("Timeout") != "0" || r.attr("Rewrite") != "0110" {
				t.Errorf("rule 1: %+v", r.Attrs)
			}
			if r := rules[2]; r.has("Timeout") || r.has("User") {
				t.Errorf("rule 2 writes unset attributes: %+v", r.Attrs)
			}
		}},
		{"model dialplan replaces the global one", func(c *config.Config) {
			c.Dialplan = []config.DialplanRule{{Match: "global"}}
			m := c.Models["snomD785"]
			m.Dialplan = []config.DialplanRule{{Match: "model"}}
			c.Models["snomD785"] = m
		}, general, func(t *testing.T, doc node) {
			if r := doc.one(t, "dialplan").all("TEMPLATE"); len(r) != 1 || r[0].attr("MATCH") != "model" {
				t.Errorf("dialplan %+v", r)
			}
		}},
		{"replacement plan as XML", func(c *config.Config) {
			c.ReplacementPlan = `<key id="K1" wui_translation_key="k"><general type="K1"/></key><setting_replacement id="user_event_list_uri"/>`
		}, general, func(t *testing.T, doc node) {
			rp := doc.one(t, "ReplacementPlan")
			if k := rp.one(t, "key"); k.attr("id") != "K1" || k.one(t, "general").attr("type") != "K1" {
				t.Errorf("key %+v", k)
			}
			rp.one(t, "setting_replacement")
		}},
		{"certificates", func(c *config.Config) {
			c.Certificates = []string{certFile}
		}, general, func(t *testing.T, doc node) {
			cert := doc.one(t, "certificates").one(t, "certificate")
			if cert.attr("type") != "base64" || cert.Text != certB64 {
				t.Errorf("certificate %+v", cert)
			}
		}},
		{"uploads", func(c *config.Config) {
			c.Uploads = []config.Upload{{File: "brand.tar", Type: "gui"}, {File: "https://cdn.example/moh.raw", Type: "moh"}}
		}, general, func(t *testing.T, doc node) {
			files := doc.one(t, "uploads").all("file")
			if len(files) != 2 || files[0].attr("url") != base+"/brand.tar" || files[0].attr("type") != "gui" || files[1].attr("url") != "https://cdn.example/moh.raw" {
				t.Errorf("uploads %+v", files)
			}
		}},
		{"raw xml fragment", func(c *config.Config) {
			c.XML = `<vendor-extension a="1"><x/></vendor-extension>`
		}, general, func(t *testing.T, doc node) {
			if x := doc.one(t, "vendor-extension"); x.attr("a") != "1" {
				t.Errorf("raw %+v", x)
			}
		}},
		{"function key attributes", func(c *config.Config) {
			m := c.Models["snomD785"]
			m.FKeys = config.FKeys{4: {Value: "blf sip:1@pbx", Label: "Al", ShortLabel: "A", LP: "speed 2", CLP: "1", DefaultText: "$name", Context: "2", Perm: "RW"}}
			c.Models["snomD785"] = m
		}, general, func(t *testing.T, doc node) {
			k := doc.one(t, "functionKeys").one(t, "fkey")
			want := map[string]string{"idx": "4", "context": "2", "label": "Al", "short_label": "A", "lp": "speed 2", "clp": "1", "default_text": "$name", "perm": "RW"}
			for a, v := range want {
				if k.attr(a) != v {
					t.Errorf("fkey %s = %q, want %q", a, k.attr(a), v)
				}
			}
			if strings.TrimSpace(k.Text) != "blf sip:1@pbx" {
				t.Errorf("fkey text %q", k.Text)
			}
		}},
		{"function key defined by child XML", func(c *config.Config) {
			m := c.Models["snomD785"]
			m.FKeys = config.FKeys{3: {XML: `<general type="Park"/><action><url target="http://x/?a=1&amp;b=2"/></action>`}}
			c.Models["snomD785"] = m
		}, general, func(t *testing.T, doc node) {
			k := doc.one(t, "functionKeys").one(t, "fkey")
			if k.one(t, "general").attr("type") != "Park" || k.one(t, "action").one(t, "url").attr("target") != "http://x/?a=1&b=2" {
				t.Errorf("child XML not written as XML: %+v", k)
			}
		}},
		{"phone book fields and shared book replaces", func(c *config.Config) {
			c.Phonebook = []config.PhonebookEntry{{FirstName: "Max", LastName: "Muster", Number: "1", NumberType: "mobile", Type: "vip", Context: "1"}}
			m := c.Models["snomD785"]
			m.Phonebook = []config.PhonebookEntry{{Name: "Model", Number: "2"}}
			c.Models["snomD785"] = m
		}, general, func(t *testing.T, doc node) {
			tb := doc.one(t, "tbook")
			items := tb.all("item")
			if tb.attr("complete") != "true" || tb.attr("e") != "2" || len(items) != 2 {
				t.Fatalf("tbook %+v", tb)
			}
			it := items[0]
			if it.one(t, "name").Text != "Max Muster" || it.one(t, "first_name").Text != "Max" || it.one(t, "last_name").Text != "Muster" ||
				it.one(t, "number_type").Text != "mobile" || it.attr("type") != "vip" || it.attr("context") != "1" || it.attr("index") != "0" {
				t.Errorf("item 0 %+v", it)
			}
			if items[1].attr("index") != "1" || items[1].one(t, "name").Text != "Model" {
				t.Errorf("item 1 %+v", items[1])
			}
		}},
		{"phone book add keeps the user's contacts", func(c *config.Config) {
			c.PhonebookMode = "add"
		}, general, func(t *testing.T, doc node) {
			if tb := doc.one(t, "tbook"); tb.has("complete") {
				t.Errorf("add mode wrote complete: %+v", tb.Attrs)
			}
		}},
		{"personal book is numbered after the shared one", func(c *config.Config) {
			c.Phones[0].Phonebook = []config.PhonebookEntry{{Name: "Mine", Number: "9"}}
		}, phoneDoc, func(t *testing.T, doc node) {
			tb := doc.one(t, "tbook")
			if tb.has("complete") || tb.one(t, "item").attr("index") != "1" {
				t.Errorf("personal book %+v", tb)
			}
		}},
		{"personal book alone replaces", func(c *config.Config) {
			c.Phonebook = nil
			c.Phones[0].Phonebook = []config.PhonebookEntry{{Name: "Mine", Number: "9"}}
		}, phoneDoc, func(t *testing.T, doc node) {
			if tb := doc.one(t, "tbook"); tb.attr("complete") != "true" || tb.one(t, "item").attr("index") != "0" {
				t.Errorf("personal book %+v", tb)
			}
		}},
		{"setting files chain the generated file first", func(c *config.Config) {
			c.SettingFiles = []string{"extra.xml", "https://cdn.example/more.xml"}
		}, general, func(t *testing.T, doc node) {
			if doc.XMLName.Local != "setting-files" {
				t.Fatalf("root %s", doc.XMLName.Local)
			}
			urls := fileURLs(doc)
			want := []string{base + "/snomprov/snomD785.xml", base + "/extra.xml", "https://cdn.example/more.xml"}
			if strings.Join(urls, " ") != strings.Join(want, " ") {
				t.Errorf("setting-files %v, want %v", urls, want)
			}
		}},
		{"gui and web languages by Snom name and own file", func(c *config.Config) {
			c.GUILanguages = []config.Language{{Name: "Deutsch"}, {Name: "Custom", File: "gui_lang_Custom.xml"}}
			c.WebLanguages = []config.Language{{Name: "Deutsch"}}
		}, func(c *Catalog) []byte {
			d, ok := c.Part(base, "snomD785-gui-languages.xml")
			if !ok {
				return nil
			}
			return d.Body
		}, func(t *testing.T, doc node) {
			langs := doc.all("language")
			if doc.XMLName.Local != "gui-languages" || len(langs) != 2 || langs[0].attr("url") != base+"/gui_lang_DE.xml" || langs[0].attr("name") != "Deutsch" || langs[1].attr("url") != base+"/gui_lang_Custom.xml" {
				t.Errorf("gui-languages %+v", doc)
			}
		}},
		{"web languages", func(c *config.Config) {
			c.WebLanguages = []config.Language{{Name: "Deutsch"}}
		}, func(c *Catalog) []byte {
			d, _ := c.Part(base, "snomD785-web-languages.xml")
			return d.Body
		}, func(t *testing.T, doc node) {
			if l := doc.one(t, "language"); doc.XMLName.Local != "web-languages" || l.attr("url") != base+"/web_lang_DE.xml" {
				t.Errorf("web-languages %+v", doc)
			}
		}},
		{"a phone's own containers go into its own file", func(c *config.Config) {
			c.Phones[0].Dialplan = []config.DialplanRule{{Match: "mine"}}
			c.Phones[0].XML = `<mine/>`
		}, phoneDoc, func(t *testing.T, doc node) {
			doc.one(t, "mine")
			if r := doc.one(t, "dialplan").one(t, "TEMPLATE"); r.attr("MATCH") != "mine" {
				t.Errorf("phone dialplan %+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := scopedConfig(t)
			tt.edit(cfg)
			c := newCatalog(t, cfg)
			b := tt.file(c)
			if b == nil {
				t.Fatal("no such file")
			}
			tt.check(t, parseNode(t, b))
		})
	}
}

func general(c *Catalog) []byte { return c.General(base, "snomD785").Body }

func phoneDoc(c *Catalog) []byte {
	d, _ := c.Phone(base, macA)
	return d.Body
}

func fileURLs(doc node) []string {
	var out []string
	for _, f := range doc.all("file") {
		out = append(out, f.attr("url"))
	}
	return out
}

// TestDeviceFamilies: a conference phone's file leaves out what it does
// not read; a DECT base gets its firmware inside its settings file.
func TestDeviceFamilies(t *testing.T) {
	cfg := scopedConfig(t)
	cfg.Dialplan = []config.DialplanRule{{Match: "0"}}
	cfg.Models["snomM900"] = config.Model{DECT: config.DECTFirmware{
		URL: "https://dect.snom.com", Version: "0740", Branch: "0104",
		Handsets: map[string]config.DECTVersion{"M65": {Version: "0740", Branch: "0104"}, "M85": {Version: "0700"}},
	}}
	c := newCatalog(t, cfg)

	c520 := parseNode(t, c.General(base, "snomC520").Body)
	if len(c520.all("dialplan")) != 0 || len(c520.all("functionKeys")) != 0 {
		t.Errorf("C520 got containers it does not read:\n%s", c.General(base, "snomC520").Body)
	}
	if len(c520.all("tbook")) != 1 {
		t.Error("C520 lost its phone book")
	}
	d785 := parseNode(t, c.General(base, "snomD785").Body)
	if len(d785.all("dialplan")) != 1 {
		t.Error("D785 lost the dial plan")
	}

	body := c.General(base, "snomM900").Body
	m900 := parseNode(t, body)
	if len(m900.all("dialplan")) != 0 || len(m900.all("tbook")) != 0 {
		t.Errorf("M900 got desk containers:\n%s", body)
	}
	fw := m900.one(t, "firmware-settings")
	if fw.one(t, "firmware").Text != "https://dect.snom.com" || fw.one(t, "fp_fwu_sw_version").Text != "0740" || fw.one(t, "fp_fwu_branch_version").Text != "0104" {
		t.Errorf("DECT firmware:\n%s", body)
	}
	pp := fw.all("pp_fwu_sw_version")
	if len(pp) != 2 || pp[0].attr("type") != "M65" || pp[1].attr("type") != "M85" || len(fw.all("pp_fwu_branch_version")) != 1 {
		t.Errorf("handset firmware:\n%s", body)
	}
	if strings.Contains(string(body), "firmware_status") {
		t.Error("a DECT base was pointed at a firmware file")
	}
	if _, ok := modelFirmware(c, base, "snomM900"); ok {
		t.Error("a DECT base has a firmware file")
	}
	if v, managed := c.FirmwareTarget("snomM900"); v != "0740" || !managed {
		t.Errorf("DECT target %q %v", v, managed)
	}
}

// TestParts: a chained file's documents are served and named in Files.
func TestParts(t *testing.T) {
	cfg := scopedConfig(t)
	cfg.GUILanguages = []config.Language{{Name: "Deutsch"}}
	cfg.Phones[0].SettingFiles = []string{"extra.xml"}
	c := newCatalog(t, cfg)
	paths := filePaths(t, c)
	want := "/snomD785.htm /snomprov/snomD785.xml /snomprov/snomD785-gui-languages.xml /snomD785-000413A11FA7.htm /snomprov/000413A11FA7.xml /snomD785-firmware.htm"
	if strings.Join(paths, " ") != want {
		t.Errorf("Files:\n%s\nwant\n%s", strings.Join(paths, " "), want)
	}
	for _, name := range []string{"snomD785.xml", "snomD785-gui-languages.xml", "000413A11FA7.xml"} {
		if _, ok := c.Part(base, name); !ok {
			t.Errorf("Part(%s) not served", name)
		}
	}
	for _, name := range []string{"snomD785-web-languages.xml", "000413000001.xml", "snomD305.xml", "snomD785.htm", "snomX-000413A11FA7.xml"} {
		if _, ok := c.Part(base, name); ok {
			t.Errorf("Part(%s) served", name)
		}
	}
	// A configured type has its own part; a type without [models.X] that reads everything shares the generic one.
	if gen := parseNode(t, c.General(base, "snomD345").Body); gen.XMLName.Local != "setting-files" || fileURLs(gen)[0] != base+"/snomprov/snomD345.xml" {
		t.Errorf("snomD345 %+v", gen)
	}
	if gen := parseNode(t, c.General(base, "snomD305").Body); fileURLs(gen)[0] != base+"/snomprov/generic.xml" {
		t.Errorf("snomD305 %+v", gen)
	}
	if _, ok := c.Part(base, "generic.xml"); !ok {
		t.Error("the generic part is not served")
	}
}

func TestParsePartRoundTrip(t *testing.T) {
	for _, k := range []docKey{
		{kind: KindGeneral, model: "snomD785"}, {kind: KindGeneral}, {kind: KindPhone, mac: macA},
		{kind: KindCombined, model: "snomD785", mac: macA}, {kind: KindCombined, mac: macA},
	} {
		for _, p := range []part{partSettings, partGUI, partWeb} {
			got, gp, ok := parsePart(partName(k, p))
			if !ok || got != k || gp != p {
				t.Errorf("parsePart(%s) = %+v %d %v; want %+v %d", partName(k, p), got, gp, ok, k, p)
			}
		}
	}
	if model, mac, hasMAC, ok := PartIdentity("snomD785-000413A11FA7.xml"); !ok || model != "snomD785" || mac != macA || !hasMAC {
		t.Errorf("PartIdentity: %s %s %v %v", model, mac, hasMAC, ok)
	}
}

// TestCombinedChain: with a {mac} URL the one file a phone fetches is the
// <setting-files> list of the merged settings and languages.
func TestCombinedChain(t *testing.T) {
	cfg := scopedConfig(t)
	cfg.HTTP.URL = base + "/prov/{mac}.xml"
	cfg.WebLanguages = []config.Language{{Name: "Deutsch"}}
	cfg.Phones[0].Dialplan = []config.DialplanRule{{Match: "mine"}}
	c := newCatalog(t, cfg)
	paths := filePaths(t, c)
	want := "/prov/000413A11FA7.xml /snomprov/snomD785-000413A11FA7.xml /snomprov/snomD785-000413A11FA7-web-languages.xml /snomD785-firmware.htm"
	if strings.Join(paths, " ") != want {
		t.Fatalf("files %v, want %s", paths, want)
	}
	top := parseNode(t, c.Combined(base, "snomD785", macA).Body)
	if urls := fileURLs(top); len(urls) != 2 || urls[0] != base+"/snomprov/snomD785-000413A11FA7.xml" {
		t.Errorf("combined setting-files %v", urls)
	}
	d, ok := c.Part(base, "snomD785-000413A11FA7.xml")
	if !ok {
		t.Fatal("combined part not served")
	}
	merged := parseNode(t, d.Body)
	if merged.one(t, "dialplan").one(t, "TEMPLATE").attr("MATCH") != "mine" || len(merged.one(t, "phone-settings").all("user_name")) != 1 {
		t.Errorf("combined part:\n%s", d.Body)
	}
	if _, ok := c.Part(base, "snomD785-000413000099.xml"); ok {
		t.Error("a part of an unconfigured phone is served")
	}
}

// filePaths lists the paths of phone A's files, each checked well-formed.
func filePaths(t *testing.T, c *Catalog) []string {
	t.Helper()
	files, err := c.Files(macA, "", base, false)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		parseNode(t, f.Body)
	}
	return paths
}
