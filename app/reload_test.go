package app

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"weak"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
)

// TestReloadKeepsNoOldConfig: after a reload nothing in the HTTP, PnP or
// DHCP server may still reach the previous configuration. With 1000 phones
// it is megabytes, so every reload that kept one would grow the RSS.
func TestReloadKeepsNoOldConfig(t *testing.T) {
	dir := t.TempDir()
	load := func(language string) *config.Config {
		t.Helper()
		src := fmt.Sprintf(`
[server]
interface = "lo"
state_dir = %q
[http]
listen = "127.0.0.1:8080"
firmware_dir = %q
[dhcp]
enabled = true
pool = "10.79.0.100-10.79.0.199"
[settings]
language = %q
[[phones]]
mac = "000413A11FA7"
model = "snomD785"
`, dir, filepath.Join(dir, "fw"), language)
		cfg, err := config.Parse(filepath.Join(dir, "snomprov.toml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	netw := network{iface: "lo", prefix: netip.MustParsePrefix("10.79.0.1/24"), advertise: netip.MustParseAddr("10.79.0.1")}
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := load("English")
	srv := newServers(netw, inv, quiet)
	p, err := srv.compile(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	p = nil
	if srv.pnp == nil || srv.dhcp == nil {
		t.Fatal("the test needs all three servers")
	}
	old := weak.Make(first)
	first = nil
	for _, lang := range []string{"Deutsch", "Francais"} {
		if _, err := srv.reload(load(lang)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	if old.Value() != nil {
		t.Error("the configuration before the reloads is still reachable")
	}
	runtime.KeepAlive(srv)
}
