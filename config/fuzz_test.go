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
