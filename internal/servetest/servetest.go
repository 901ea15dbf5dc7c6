// Package servetest runs the real appliance for a test: it builds
// cmd/snomprov once per test process and starts `snomprov serve` on a
// config, waits for it to be ready and stops it (SIGTERM, then a clean
// exit is checked) when the test ends; and the small helpers such tests
// need (an external program, a free port). test/e2e and test/browser (its
// own module) share it.
package servetest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/syncbuf"
)

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// BinaryEnv names a snomprov binary already built, which Binary then
// returns instead of building one: test/vm passes the host's build into a
// virtual machine, whose file system it cannot write.
const BinaryEnv = "SNOMPROV_TEST_BINARY"

// Binary builds cmd/snomprov once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "snomprov-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "snomprov")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/snomprov")
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building snomprov: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// Proc is a running `snomprov serve`.
type Proc struct {
	Cmd  *exec.Cmd
	Logs *syncbuf.Buffer // its stdout and stderr
	done chan error
}

// Serve runs `snomprov serve -config cfgPath` and waits for msg=ready. It
// is stopped when the test ends.
func Serve(t testing.TB, cfgPath string) *Proc {
	t.Helper()
	p := &Proc{Logs: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.Cmd = exec.Command(Binary(t), "serve", "-config", cfgPath)
	p.Cmd.Stdout = p.Logs
	p.Cmd.Stderr = p.Logs
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() { p.Stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.Logs.String(), "msg=ready") {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("snomprov serve exited before ready (%v):\n%s", err, p.Logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("snomprov serve not ready after 20s:\n%s", p.Logs)
		}
	}
	return p
}

// Stop sends SIGTERM and checks for a clean exit within 15 s (else kills).
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	if p.Cmd.ProcessState != nil {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("snomprov serve exit after SIGTERM: %v\n%s", err, p.Logs)
		}
	case <-time.After(15 * time.Second):
		p.Cmd.Process.Kill()
		t.Errorf("snomprov serve ignored SIGTERM for 15s:\n%s", p.Logs)
	}
}

// Kill kills the process (SIGKILL) and waits for it to be gone.
func (p *Proc) Kill() {
	p.Cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// NeedTool returns the path of an external program the test runs, and
// skips the test without it (fails it under CI=true, where
// .ci/install-deps.sh installs every one).
func NeedTool(t testing.TB, name string) string {
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

// FreePort picks an unused TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
