package provision

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
)

var update = flag.Bool("update", false, "rewrite testdata/office/office.golden")

// TestOfficeGolden renders a full office (testdata/office/office.toml: a
// D785 with a D7 module, 12 lines, BLF and speed-dial keys, a dial plan, a
// replacement plan, German GUI and web languages, a trusted certificate, a
// chained file, a shared and a personal phone book), compares every file
// with the golden copy, and parses each back to check it holds what the
// TOML says.
func TestOfficeGolden(t *testing.T) {
	cfg, err := config.Load("testdata/office/office.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("%v", cfg.LocateAll(field.List(err)))
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	const officeBase = "http://10.0.0.2"
	mac := mustMAC("000413A11FA7")
	files, err := c.Files(mac, "", officeBase, true)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	byPath := map[string]node{}
	for _, f := range files {
		fmt.Fprintf(&all, "==> %s <==\n%s\n", f.Path, f.Body)
		byPath[f.Path] = parseNode(t, f.Body)
	}
	const golden = "testdata/office/office.golden"
	if *update {
		if err := os.WriteFile(golden, all.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./provision -run TestOfficeGolden -update)", err)
	}
	if !bytes.Equal(all.Bytes(), want) {
		t.Errorf("the office's files differ from %s (go test ./provision -run TestOfficeGolden -update, then review the diff):\n%s", golden, all.Bytes())
	}

	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	wantPaths := "/snomD785.htm /snomprov/snomD785.xml /snomprov/snomD785-gui-languages.xml /snomprov/snomD785-web-languages.xml /snomD785-000413A11FA7.htm /snomD785-firmware.htm"
	if strings.Join(paths, " ") != wantPaths {
		t.Fatalf("files %v, want %s", paths, wantPaths)
	}

	// The general file chains the generated settings, the office's own file
	// and the two language lists.
	top := byPath["/snomD785.htm"]
	if got := strings.Join(fileURLs(top), " "); top.XMLName.Local != "setting-files" || got != officeBase+"/snomprov/snomD785.xml "+officeBase+"/office-extras.xml "+officeBase+"/snomprov/snomD785-gui-languages.xml "+officeBase+"/snomprov/snomD785-web-languages.xml" {
		t.Errorf("setting-files: %s", got)
	}
	for _, l := range []struct{ path, root, file string }{
		{"/snomprov/snomD785-gui-languages.xml", "gui-languages", "/gui_lang_DE.xml"},
		{"/snomprov/snomD785-web-languages.xml", "web-languages", "/web_lang_DE.xml"},
	} {
		doc := byPath[l.path]
		if lang := doc.one(t, "language"); doc.XMLName.Local != l.root || lang.attr("name") != "Deutsch" || lang.attr("url") != officeBase+l.file {
			t.Errorf("%s: %+v", l.path, doc)
		}
	}

	general := byPath["/snomprov/snomD785.xml"]
	ps := general.one(t, "phone-settings")
	for name, v := range map[string]string{"language": "Deutsch", "web_language": "Deutsch", "timezone": "GER+1", "tone_scheme": "GER", "auto_reboot_on_setting_change": "on", "update_policy": "auto_update", "firmware_status": officeBase + "/snomD785-firmware.htm"} {
		if got := ps.one(t, name).Text; got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	rules := general.one(t, "dialplan").all("TEMPLATE")
	if len(rules) != 2 || rules[0].attr("MATCH") != "0,*" || rules[0].attr("Timeout") != "5" || rules[1].attr("MATCH") != "110" || rules[1].attr("Timeout") != "0" {
		t.Errorf("dialplan %+v", rules)
	}
	if k := general.one(t, "ReplacementPlan").one(t, "key"); k.attr("id") != "ParkSlot" {
		t.Errorf("replacement plan %+v", k)
	}
	pemData, _ := os.ReadFile("testdata/office/pbx-ca.pem")
	block, _ := pem.Decode(pemData)
	if got := general.one(t, "certificates").one(t, "certificate").Text; got != base64.StdEncoding.EncodeToString(block.Bytes) {
		t.Errorf("certificate %q", got)
	}
	shared := general.one(t, "tbook")
	items := shared.all("item")
	if shared.attr("complete") != "true" || len(items) != 2 || items[0].one(t, "name").Text != "Reception" || items[0].attr("type") != "colleagues" ||
		items[1].one(t, "first_name").Text != "Max" || items[1].one(t, "name").Text != "Max Mustermann" || items[1].one(t, "number_type").Text != "business" {
		t.Errorf("shared book %+v", shared)
	}
	if len(general.all("functionKeys")) != 0 {
		t.Error("the model has no keys but its file has <functionKeys>")
	}

	own := byPath["/snomD785-000413A11FA7.htm"]
	ps = own.one(t, "phone-settings")
	for _, name := range []string{"user_name", "user_pass", "user_host"} {
		var got []string
		for _, s := range ps.all(name) {
			got = append(got, s.attr("idx")+"="+s.Text)
		}
		var want []string
		for i := 1; i <= 12; i++ {
			v := map[string]string{"user_name": strconv.Itoa(100 + i), "user_pass": "pw" + strconv.Itoa(i), "user_host": "pbx.office.lan"}[name]
			want = append(want, strconv.Itoa(i)+"="+v)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %v", name, got)
		}
	}
	keys := map[string]node{}
	for _, k := range own.one(t, "functionKeys").all("fkey") {
		keys[k.attr("idx")] = k
	}
	for idx, want := range map[string]string{
		"0": "line", "1": "blf sip:201@pbx.office.lan|*8", "2": "blf sip:202@pbx.office.lan|*8",
		"3": "speed +49301234567", "24": "blf sip:301@pbx.office.lan|*8", "41": "speed 110",
	} {
		if got := keys[idx].Text; got != want {
			t.Errorf("fkey %s = %q, want %q", idx, got, want)
		}
	}
	if k := keys["1"]; k.attr("label") != "Anna" || k.attr("context") != "1" || k.attr("perm") != "RW" {
		t.Errorf("fkey 1 %+v", k.Attrs)
	}
	if k := keys["2"]; k.attr("short_label") != "B" || k.attr("lp") != "speed 202" || k.attr("clp") != "1" || k.attr("default_text") != "$name $state" {
		t.Errorf("fkey 2 %+v", k.Attrs)
	}
	if k := keys["5"]; k.one(t, "general").attr("type") != "ParkSlot" || k.one(t, "initialization").one(t, "state").attr("value") != "initial" {
		t.Errorf("fkey 5 (XML definition) %+v", k)
	}
	personal := own.one(t, "tbook")
	if it := personal.one(t, "item"); personal.has("complete") || it.attr("index") != "2" || it.one(t, "name").Text != "Anna (mobile)" || it.attr("type") != "vip" {
		t.Errorf("personal book %+v", personal)
	}

	fw := byPath["/snomD785-firmware.htm"]
	if fw.one(t, "firmware").Text != "http://fw.office.lan/snomD785-10.1.73.4-SIP-r.bin" || fw.one(t, "firmware_uxm").Text != "http://fw.office.lan/snomD7-2.0.4-r.bin" {
		t.Errorf("firmware %+v", fw)
	}
}
