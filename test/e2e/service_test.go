package e2e

// The systemd side of `snomprov serve`, as systemd/snomprov.service relies
// on it: Type=notify (READY=1 only once bound), ExecReload=kill -HUP
// (RELOADING=1 … READY=1, an invalid file keeps the old config),
// WatchdogSec= (WATCHDOG=1 at half the interval) and a clean stop on
// SIGTERM (STOPPING=1, exit 0). systemd is played by a unixgram socket in
// NOTIFY_SOCKET; the binary runs in a lantest namespace.

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
)

// notifySocket is a stand-in for systemd's notification socket.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A path socket, not an abstract one: abstract names are per network
	// namespace, and the binary runs in another one.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, msgs: make(chan string, 256)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				n.msgs <- line
			}
		}
	}()
	return n
}

// next returns the next message other than a WATCHDOG=1 ping, failing
// after 15 s.
func (n *notifySocket) next(t *testing.T, waitingFor string, p *lantest.Process) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case got, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", waitingFor)
			}
			if got != "WATCHDOG=1" {
				return got
			}
		case <-deadline:
			t.Fatalf("no %s from snomprov within 15 s\n%s", waitingFor, p.Output())
		}
	}
}

// expect waits for want, skipping STATUS= lines, and fails on any other
// message first.
func (n *notifySocket) expect(t *testing.T, want string, p *lantest.Process) {
	t.Helper()
	for {
		got := n.next(t, want, p)
		if got == want {
			return
		}
		if !strings.HasPrefix(got, "STATUS=") {
			t.Fatalf("sd_notify: got %q while waiting for %q\n%s", got, want, p.Output())
		}
	}
}

// expectStatus checks that the next message is a STATUS= line holding want.
func (n *notifySocket) expectStatus(t *testing.T, want string, p *lantest.Process) {
	t.Helper()
	if got := n.next(t, "STATUS=", p); !strings.HasPrefix(got, "STATUS=") || !strings.Contains(got, want) {
		t.Fatalf("sd_notify: got %q, want STATUS= holding %q\n%s", got, want, p.Output())
	}
}

// watchdogPings counts WATCHDOG=1 messages during d, failing on anything else.
func (n *notifySocket) watchdogPings(t *testing.T, d time.Duration) int {
	t.Helper()
	count := 0
	end := time.After(d)
	for {
		select {
		case got := <-n.msgs:
			if strings.HasPrefix(got, "STATUS=") {
				continue
			}
			if got != "WATCHDOG=1" {
				t.Fatalf("sd_notify: unexpected %q while idle", got)
			}
			count++
		case <-end:
			return count
		}
	}
}

func TestServiceNotifyReloadWatchdogStop(t *testing.T) {
	bin := binary(t)
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24"})
	state := t.TempDir()
	body := `[server]
interface = "eth0"
advertise = "10.77.0.1"
state_dir = "` + state + `"
[http]
listen = ":8080"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "` + filepath.Join(state, "fw") + `"
[pnp]
answer = "all"
`
	cfg := writeConfig(t, body)
	n := listenNotify(t)

	// WATCHDOG_USEC is what systemd sets for WatchdogSec=; 1 s keeps the test
	// short (the unit's 30 s means a ping every 15 s).
	p := srv.Start("env", "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000", bin, "serve", "-config", cfg)
	n.expect(t, "READY=1", p)
	// What `systemctl status` shows on its Status: line.
	n.expectStatus(t, "http :8080, pnp answer=all, dhcp off; 0 phones", p)
	if !strings.Contains(p.Output(), "msg=ready") {
		// READY=1 must not come before the listeners are bound, which is
		// what the "ready" log line states.
		if err := p.WaitOutput("msg=ready", 5*time.Second); err != nil {
			t.Fatalf("READY=1 sent but no msg=ready logged: %v\n%s", err, p.Output())
		}
	}
	if pings := n.watchdogPings(t, 2200*time.Millisecond); pings < 3 {
		t.Errorf("%d WATCHDOG=1 pings in 2.2 s with WATCHDOG_USEC=1s, want at least 3 (one per 0.5 s)", pings)
	}

	// systemctl reload: ExecReload=/bin/kill -HUP $MAINPID.
	p.Signal(unix.SIGHUP)
	n.expect(t, "RELOADING=1", p)
	n.expect(t, "READY=1", p)
	n.expectStatus(t, "STATUS=http :8080", p)

	// A broken file: the old config keeps serving, and systemd still gets
	// READY=1 so the unit does not hang in "reloading".
	if err := os.WriteFile(cfg, []byte(body+"\n[http\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(unix.SIGHUP)
	n.expect(t, "RELOADING=1", p)
	n.expect(t, "READY=1", p)
	n.expectStatus(t, "STATUS=RELOAD FAILED, previous config still in use: "+cfg+":", p)
	select {
	case <-p.Done():
		t.Fatalf("snomprov exited after reloading an invalid config: %v\n%s", p.Err(), p.Output())
	case <-time.After(300 * time.Millisecond):
	}

	// systemctl stop: SIGTERM, STOPPING=1, exit status 0 (Restart=on-failure
	// must not restart a clean stop).
	p.Signal(unix.SIGTERM)
	n.expect(t, "STOPPING=1", p)
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Errorf("snomprov exited with %v after SIGTERM, want status 0\n%s", err, p.Output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("snomprov did not exit within the unit's TimeoutStopSec=20s\n%s", p.Output())
	}
}
