package app

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
)

// TestReloadRereadsPhonesCSV: a reload reads the config file again, and
// with it the phones CSVs it names, so an edited row is served; a row
// made bad refuses the reload and keeps what was served.
func TestReloadRereadsPhonesCSV(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "snomprov.toml")
	csvFile := filepath.Join(dir, "phones.csv")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(file, `phones_csv = ["phones.csv"]
[server]
interface = "lo"
state_dir = "`+dir+`"
[http]
listen = "127.0.0.1:8080"
https_listen = "" # the phone's own file is asked for over plain HTTP here
cleartext_phones = ["000413A11FA7"]
[lines]
host = "pbx.example.com"
`)
	write(csvFile, "mac;model;line1_account;line1_password\n000413A11FA7;snomD785;101;pw1\n")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServers(testLAN, inv, quiet)
	p, err := srv.compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	a := &Appliance{cfg: cfg, inv: inv, servers: srv, log: quiet, net: testLAN, load: func() (*config.Config, error) { return config.Load(file) }}
	served := func() string {
		rec := httptest.NewRecorder()
		srv.http.ServeHTTP(rec, httptest.NewRequest("GET", "http://10.79.0.1:8080/snomD785-000413A11FA7.htm", nil))
		return rec.Body.String()
	}
	if b := served(); !strings.Contains(b, `<user_name idx="1" perm="R">101</user_name>`) {
		t.Fatalf("the CSV's line is not served:\n%s", b)
	}
	write(csvFile, "mac;model;line1_account;line1_password\n000413A11FA7;snomD785;202;pw2\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if b := served(); !strings.Contains(b, `<user_name idx="1" perm="R">202</user_name>`) {
		t.Fatalf("the edited CSV is not served after reload:\n%s", b)
	}
	write(csvFile, "mac;model;line1_account\n000413A11FA7;snomD785;202\nnot-a-mac;snomD785;303\n")
	err = a.Reload()
	if err == nil || !strings.Contains(err.Error(), "phones.csv:3:1: mac: bad MAC address") {
		t.Fatalf("reload of a bad CSV: %v", err)
	}
	if b := served(); !strings.Contains(b, "pw2") {
		t.Fatalf("a refused reload changed what is served:\n%s", b)
	}
}
