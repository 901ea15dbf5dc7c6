package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestBrokenGolden pins the exact output `snomprov check` prints for a file
// with every kind of problem (paths made relative to testdata/).
func TestBrokenGolden(t *testing.T) {
	name := filepath.Join("testdata", "broken.toml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckText(name, data)
	if err == nil {
		t.Fatal("broken.toml loaded")
	}
	got := err.Error() + "\n"
	golden := filepath.Join("testdata", "broken.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// one problem per line, each FILE:LINE:COL: key: message
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		parts := strings.SplitN(line, ":", 5)
		if len(parts) < 5 || parts[0] != "testdata/broken.toml" || parts[1] == "" || parts[2] == "" {
			t.Errorf("not FILE:LINE:COL: key: message: %s", line)
		}
	}
}

// issueExample loads testdata/issue-example.toml with its firmware image
// in a temporary firmware_dir.
func issueExample(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "issue-example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	fwDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(fwDir, "snomD785-10.1.73.4-SIP-r.bin"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), `"/var/lib/snomprov/firmware"`, `"`+fwDir+`"`, 1)
	cfg, err := Parse("issue-example.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// IssueExample is issueExample for the external tests (compile_test.go).
var IssueExample = issueExample

// TestIssueExample: the layout in the issue loads as written.
func TestIssueExample(t *testing.T) {
	cfg := issueExample(t)
	p := cfg.Phones[0]
	if p.Model != "snomD785" || p.Settings["user_name"].Indexed[1].Value != "101" || p.FKeys[1].Value != "blf sip:102@pbx.example.com" {
		t.Fatalf("phone: %+v", p)
	}
	if cfg.Models["snomD785"].Settings["ntp_server"].Value != "pool.ntp.org" || cfg.Phonebook[0].Number != "100" {
		t.Fatalf("models/phonebook: %+v %+v", cfg.Models, cfg.Phonebook)
	}
	if cfg.SettingURL(cfg.Server.Advertise) != "http://10.0.0.2/" {
		t.Fatalf("setting URL %q", cfg.SettingURL(cfg.Server.Advertise))
	}
	// Its DHCP part against its LAN: TestIssueExampleCompiles.
}
