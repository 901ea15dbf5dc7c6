package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addSeeds(f *testing.F) {
	f.Add([]byte(""))
	f.Add(defaultTOML)
	f.Add([]byte("[http]\nlisten = 80\n[[phones]]\nmac = \"zz\"\n[phones.settings]\nuser_pass = { 1 = { value = \"s\", perm = \"Q\" } }\n"))
	f.Add([]byte("a.b.\"c.d\" = { x = [1, {y = 2}], 'z' = \"\"\"\n[q]\n\"\"\" }\n[[t.u]]\n[t.u.v]\nw = '''x'''\n"))
	f.Add([]byte("[dhcp]\nenabled = true\npool = \"10.0.0.9-10.0.0.1\"\n[[dhcp.reservations]]\nmac = \"000413A11FA7\"\n"))
	for _, dir := range []string{"testdata", filepath.Join("..", "packaging"), filepath.Join("..", "provision", "testdata", "office")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
}

// FuzzParse: arbitrary bytes never panic; every failure is a non-empty
// Errors whose problems name the file, and every problem about a key has a
// line and column inside the text.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		lines := strings.Count(string(data), "\n") + 1
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T is not a non-empty Errors: %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.toml" || e.Msg == "" || e.Line < 0 || e.Line > lines {
					t.Fatalf("bad problem %#v in a %d-line text", e, lines)
				}
				if e.Key != "" && e.Line == 0 {
					t.Fatalf("problem about key %s has no position: %v", e.Key, e)
				}
			}
			return
		}
		cfg.SettingURL(netip.Addr{})
		cfg.HTTPPort()
		for _, p := range cfg.Phones {
			if q, ok := cfg.Phone(p.MAC); !ok || q.MAC != p.MAC {
				t.Fatalf("phone %s not found by MAC", p.MAC)
			}
		}
	})
}

// FuzzScanPositions: the position scanner survives any text, valid TOML or not.
func FuzzScanPositions(f *testing.F) {
	addSeeds(f)
	f.Add([]byte("[[a]\n\"unterminated\n'''\n{ = ,\n[x.\"y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k, p := range scanPositions(string(data)) {
			if p.Line < 1 || p.Col < 1 || k == "" {
				t.Fatalf("bad position %v for %q", p, k)
			}
		}
	})
}

// FuzzPhonesCSV: arbitrary bytes never panic; every problem names the
// file and, when it has a place, one inside the text; every row returned
// with no problem has a MAC.
func FuzzPhonesCSV(f *testing.F) {
	f.Add([]byte("mac,model,description,line1_account,line1_password\n000413A11FA7,snomD785,Desk,101,pw\n"))
	f.Add([]byte("\ufeffmac;line2_name;language\r\n00-04-13-a1-1f-a7;\"A \"\"B\"\"\";Deutsch\r\n"))
	f.Add([]byte("mac\tfoo-bar\n\"x\ty\"\n\"unterminated\n"))
	f.Add([]byte("mac;group;firmware;firmware_uxm\n000413A11FA7;sales;snomD785-10.1.73.4-SIP-r.bin;\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, errs := ParsePhonesCSV("fuzz.csv", data)
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range errs {
			if e.File != "fuzz.csv" || e.Line > lines {
				t.Fatalf("problem outside the file: %v", e)
			}
		}
		if len(errs) == 0 {
			for _, r := range rows {
				if r.Phone.MAC.IsZero() {
					t.Fatalf("row without a MAC and no problem: %+v", r)
				}
			}
		}
	})
}
