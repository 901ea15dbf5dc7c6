// Package lantest builds a private simulated LAN for tests out of network
// namespaces: one bridge namespace acting as the switch and one namespace
// per host, joined by veth pairs created directly inside the namespaces.
// Nothing is created in the host namespace, the namespaces have no uplink,
// and every namespace and process is removed by t.Cleanup, so no test
// traffic can reach a real interface.
//
// Tests that use it skip with a clear message when not run as root or when
// `ip` is missing; under CI (CI=true) they fail instead of skipping.
package lantest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/syncbuf"
)

// LAN is one simulated segment.
type LAN struct {
	t      testing.TB
	prefix string
	Subnet netip.Prefix

	mu    sync.Mutex
	hosts []*Host
	procs []*Process
}

// Host is one machine on the LAN: a namespace whose eth0 is plugged into the bridge.
type Host struct {
	lan   *LAN
	Name  string     // short name, e.g. "srv"
	NS    string     // real namespace name
	Iface string     // always "eth0"
	MAC   string     // as configured, e.g. 00:04:13:77:00:01
	IP    netip.Addr // zero if the host has no address (a DHCP client)
}

// HostOptions configure AddHost.
type HostOptions struct {
	MAC  string // default: 02:aa:<n> style locally administered address
	Addr string // "10.77.0.1/24"; empty: no IPv4 address (DHCP client)
}

var lanCounter atomic.Int32

// Require skips (or, under CI, fails) the test when namespaces cannot be made.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2 (`ip`)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("lantest: %s, and CI must run namespace tests", why)
	}
	t.Skipf("lantest: %s; skipping the simulated-LAN test", why)
}

// New creates the switch namespace with its bridge. subnet is the private
// prefix used inside the namespaces only, e.g. "10.77.0.0/24".
func New(t testing.TB, subnet string) *LAN {
	t.Helper()
	Require(t)
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatalf("lantest: subnet: %v", err)
	}
	l := &LAN{t: t, Subnet: p.Masked(), prefix: fmt.Sprintf("spt%d-%d-", os.Getpid()%100000, lanCounter.Add(1))}
	t.Cleanup(l.close)
	sw := l.prefix + "sw"
	l.mustRun("ip", "netns", "add", sw)
	l.mustRun("ip", "-n", sw, "link", "set", "lo", "up")
	l.mustRun("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	l.mustRun("ip", "-n", sw, "link", "set", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	l.mustRun("ip", "-n", sw, "link", "set", "br0", "up")
	return l
}

// AddHost creates a namespace plugged into the bridge.
func (l *LAN) AddHost(name string, o HostOptions) *Host {
	l.t.Helper()
	l.mu.Lock()
	n := len(l.hosts) + 1
	l.mu.Unlock()
	h := &Host{lan: l, Name: name, NS: l.prefix + name, Iface: "eth0", MAC: o.MAC}
	if h.MAC == "" {
		h.MAC = fmt.Sprintf("02:aa:00:00:%02x:%02x", n/256, n%256)
	}
	sw := l.prefix + "sw"
	port := fmt.Sprintf("p%d", n)
	l.mustRun("ip", "netns", "add", h.NS)
	l.mu.Lock()
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	l.mustRun("ip", "-n", h.NS, "link", "set", "lo", "up")
	for _, kv := range []string{
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
	} {
		l.mustRun("ip", "netns", "exec", h.NS, "sysctl", "-qw", kv)
	}
	l.mustRun("ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	l.mustRun("ip", "-n", h.NS, "link", "set", "eth0", "address", h.MAC)
	l.mustRun("ip", "-n", sw, "link", "set", port, "master", "br0", "up")
	l.mustRun("ip", "-n", h.NS, "link", "set", "eth0", "up")
	if o.Addr != "" {
		pfx, err := netip.ParsePrefix(o.Addr)
		if err != nil {
			l.t.Fatalf("lantest: host %s: %v", name, err)
		}
		h.IP = pfx.Addr()
		l.mustRun("ip", "-n", h.NS, "addr", "add", o.Addr, "dev", "eth0")
	}
	h.RestoreRoutes()
	return h
}

// RestoreRoutes (re)adds the multicast and limited-broadcast routes on eth0.
// The kernel drops them when the last IPv4 address leaves the interface.
func (h *Host) RestoreRoutes() {
	h.lan.mustRun("ip", "-n", h.NS, "route", "replace", "224.0.0.0/4", "dev", "eth0")
	h.lan.mustRun("ip", "-n", h.NS, "route", "replace", "255.255.255.255/32", "dev", "eth0")
}

// Command returns a command that runs inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// Process is a background command started with Start.
type Process struct {
	Cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
}

// Start runs a command in the background inside the namespace. It is killed
// at cleanup; its output is kept and logged if the test fails.
func (h *Host) Start(name string, args ...string) *Process {
	h.lan.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	buf := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		h.lan.t.Fatalf("lantest: start %s in %s: %v", name, h.NS, err)
	}
	p := &Process{Cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	h.lan.mu.Lock()
	h.lan.procs = append(h.lan.procs, p)
	h.lan.mu.Unlock()
	h.lan.t.Cleanup(func() {
		p.Stop()
		if h.lan.t.Failed() {
			h.lan.t.Logf("output of %s in %s:\n%s", name, h.Name, p.Output())
		}
	})
	return p
}

// Output returns everything the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process exits.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, valid after Done is closed.
func (p *Process) Err() error { return p.err }

// Signal sends sig to the process group.
func (p *Process) Signal(sig unix.Signal) {
	if p.Cmd.Process != nil {
		_ = unix.Kill(-p.Cmd.Process.Pid, sig)
	}
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILL.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Signal(unix.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.Signal(unix.SIGKILL)
		<-p.done
	}
}

// WaitOutput waits until the process output contains s.
func (p *Process) WaitOutput(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), s) {
				return nil
			}
			return fmt.Errorf("process exited (%v) before printing %q", p.err, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("timeout waiting for %q", s)
}

// Do runs fn on an OS thread switched into the host's namespace. Sockets
// fn opens stay in that namespace after Do returns, so in-process test
// clients can live on the simulated LAN.
//
// Only fn's own thread is in the namespace: a socket opened later, or by a
// goroutine fn starts, lands in the host's namespace. Open every socket
// inside fn (as the servers' Bind does) or run the code as a process with
// Start instead.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", h.NS, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine instead of
			// running other goroutines in the wrong namespace.
			errc <- fmt.Errorf("restore namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func (l *LAN) mustRun(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("lantest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// close stops every process, then deletes the namespaces, switch last.
func (l *LAN) close() {
	l.mu.Lock()
	procs, hosts := l.procs, l.hosts
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	for _, h := range hosts {
		killNamespacePIDs(h.NS)
		_ = exec.Command("ip", "netns", "del", h.NS).Run()
	}
	_ = exec.Command("ip", "netns", "del", l.prefix+"sw").Run()
}

// killNamespacePIDs kills anything still running in the namespace (daemons
// that double-forked out of our process group).
func killNamespacePIDs(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// WaitListen waits until something in the namespace listens on port
// (proto "udp" or "tcp"), as `ss` reports it.
func (h *Host) WaitListen(proto string, port int, timeout time.Duration) error {
	flags := "-Hlun"
	if proto == "tcp" {
		flags = "-Hltn"
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := h.Run(context.Background(), "ss", flags, fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %d/%s in %s after %s", port, proto, h.Name, timeout)
}
