package app

import (
	"fmt"
	"runtime"
	"strings"
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
		return goodConfig(t, dir, func(s string) string {
			return strings.Replace(s, `language = "English"`, fmt.Sprintf("language = %q\n[[phones]]\nmac = \"000413A11FA7\"\nmodel = \"snomD785\"", language), 1)
		})
	}
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := load("English")
	srv := newServers(testLAN, inv, quiet)
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
