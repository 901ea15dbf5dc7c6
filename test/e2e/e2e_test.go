// Package e2e drives the real snomprov binary with real clients (curl,
// udhcpc, dhclient, dhcpcd, sipp) on loopback or on simulated LANs built
// with internal/lantest.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// binary builds cmd/snomprov once per test run and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "snomprov-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "snomprov")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/snomprov")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building snomprov: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

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
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed; .ci/install-deps.sh must install it", name)
		}
		t.Skipf("%s not installed; skipping", name)
	}
	return p
}
