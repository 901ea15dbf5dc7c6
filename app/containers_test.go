package app

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/plan"
)

// TestStatusShowsChainedFiles: the status page's "what this phone gets"
// shows the documents a <setting-files> file lists, and a catalogue error
// stops the start with its place in the file.
func TestStatusShowsChainedFiles(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "files"), 0o755)
	os.WriteFile(filepath.Join(dir, "files", "gui_lang_DE.xml"), []byte("x"), 0o644)
	src := `gui_languages = ["Deutsch"]

[server]
interface = "lo"
state_dir = "` + dir + `"
[http]
listen = "127.0.0.1:8080"
https_listen = "" # the status page is asked for over plain HTTP here
cleartext_phones = ["000413A11FA7"]
files_dir = "files"
[[dialplan]]
match = "0,*"
[[phones]]
mac = "000413A11FA7"
model = "snomD785"
[phones.fkeys]
KEY = "line"
`
	load := func(key string) *config.Config {
		cfg, err := config.Parse(filepath.Join(dir, "snomprov.toml"), []byte(strings.Replace(src, "KEY", key, 1)))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(cfg.Source, []byte(strings.Replace(src, "KEY", key, 1)), 0o644)
		return cfg
	}
	netw := plan.LAN{Interface: "lo", Prefix: netip.MustParsePrefix("10.79.0.1/24"), Advertise: netip.MustParseAddr("10.79.0.1")}
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServers(netw, inv, quiet)
	p, err := srv.compile(load("3"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.http.ServeHTTP(rec, httptest.NewRequest("GET", "/phones/00:04:13:A1:1F:A7", nil))
	body := rec.Body.String()
	for _, want := range []string{"/snomprov/generic.xml", "/snomprov/generic-gui-languages.xml", "&lt;setting-files&gt;", "&lt;dialplan"} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %s", want)
		}
	}

	_, err = newServers(netw, inv, quiet).compile(load("99"))
	if err == nil || !strings.Contains(err.Error(), "snomprov.toml:17:1: phones[0].fkeys.99: function key 99 is outside snomD785's range 0-23") {
		t.Errorf("catalogue error at start: %v", err)
	}
}
