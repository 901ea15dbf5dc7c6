// Package pgtest runs a throwaway PostgreSQL server for a test: Debian's
// binaries, a cluster made by initdb in a temporary directory, listening on
// a Unix socket in that directory only (no TCP port), stopped by its PID on
// every exit path of the test. Run as root, the server runs as the
// unprivileged user nobody, since postgres refuses to run as root.
package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/procstat"
)

// Server is one PostgreSQL cluster; Stop and Start it to take it away from
// the code under test and bring it back with its data.
type Server struct {
	t    testing.TB
	bin  string
	dir  string // owned by the server's user: data/ and the socket
	cred *syscall.Credential

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
	quit chan struct{} // tells the starter goroutine to let its thread go
}

// binDir finds Debian's PostgreSQL binaries (the newest version).
func binDir() (string, error) {
	if d := os.Getenv("SNOMPROV_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (Debian's postgresql package, /usr/lib/postgresql/*/bin)")
}

// Require skips the test (fails it under CI=true) when PostgreSQL cannot
// be run here.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := binDir()
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: %v, and CI must run the PostgreSQL tests (.ci/install-deps.sh installs it)", err)
	}
	t.Skipf("pgtest: %v; skipping the PostgreSQL test", err)
	return ""
}

// Start makes a cluster and starts it; t.Cleanup stops it and removes it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	s := &Server{t: t, bin: bin}
	// t.TempDir's parents are private to root; the server's user needs its
	// own directory it can reach.
	dir, err := os.MkdirTemp("", "snomprov-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir = dir
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody:nogroup
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", "snomprov", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "LC_ALL=C"}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// URL is the connection string: the Unix socket, user snomprov, database
// postgres.
func (s *Server) URL() string { return s.DatabaseURL("postgres") }

// DatabaseURL is the connection string of database name, which the caller
// creates (CREATE DATABASE, with a locale of its choice, say).
func (s *Server) DatabaseURL(name string) string {
	return "host=" + s.dir + " port=5432 user=snomprov dbname=" + name + " sslmode=disable connect_timeout=5"
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return
	}
	started := make(chan error, 1)
	s.done, s.quit = make(chan struct{}), make(chan struct{})
	log, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data(), "-k", s.dir, "-p", "5432",
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=50", "-c", "shared_buffers=16MB")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + s.dir, "LC_ALL=C"}
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig ends the server if the test binary dies (a timeout, a
	// crash) before Cleanup runs; it fires when the starting thread exits,
	// so that thread stays locked until Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	go func(done, quit chan struct{}) {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err != nil {
			close(done)
			return
		}
		cmd.Wait()
		log.Close()
		close(done)
		<-quit
		runtime.UnlockOSThread()
	}(s.done, s.quit)
	if err := <-started; err != nil {
		s.t.Fatalf("pgtest: starting postgres: %v", err)
	}
	s.proc = cmd
	ready := filepath.Join(s.bin, "pg_isready")
	for i := 0; ; i++ {
		if exec.Command(ready, "-q", "-h", s.dir, "-p", "5432", "-U", "snomprov").Run() == nil {
			return
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			s.proc = nil
			close(s.quit)
			s.t.Fatalf("pgtest: postgres exited at start:\n%s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if i > 300 {
			s.stopLocked()
			s.t.Fatal("pgtest: postgres not ready after 30 s")
		}
	}
}

// Stop stops the server by its PID (fast shutdown, then SIGKILL) and waits
// for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.proc == nil {
		return
	}
	pid := s.proc.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown: aborts open transactions
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the postmaster and its children
		<-s.done
	}
	close(s.quit)
	s.proc = nil
}

// CPUSeconds is the CPU time the server has used so far: the postmaster's,
// its backends', and that of the children it has reaped (procstat), for
// benchmarks that count the database's share; 0 while stopped.
func (s *Server) CPUSeconds() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return procstat.CPUSeconds(procstat.Children(s.proc.Process.Pid)...)
}

// String names the server in messages.
func (s *Server) String() string { return fmt.Sprintf("postgres in %s", s.dir) }
