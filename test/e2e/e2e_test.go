// Package e2e drives the real snomprov binary with real clients (curl,
// udhcpc, dhclient, dhcpcd, sipp) on loopback or on simulated LANs built
// with internal/lantest.
package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/snomprov/snomprov/internal/servetest"
)

// binary builds cmd/snomprov once per test run and returns its path.
func binary(t testing.TB) string { return servetest.Binary(t) }

// writeConfig writes a TOML config into a fresh temp dir and returns its path.
func writeConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "snomprov.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// needTool skips (or fails under CI=true) when an external client is missing.
func needTool(t testing.TB, name string) string { return servetest.NeedTool(t, name) }
