package dhcp

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/dhcptest"
	"github.com/snomprov/snomprov/internal/lantest"
)

// TestMain lets the test binary double as a standalone server process, so
// the kill -9 test can SIGKILL a real process without depending on cmd/.
func TestMain(m *testing.M) {
	if path := os.Getenv("SNOMPROV_DHCP_HELPER"); path != "" {
		os.Exit(helperServe(path))
	}
	os.Exit(m.Run())
}

func helperServe(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := os.ReadFile(path)
	if err != nil {
		log.Error("reading options", "err", err)
		return 2
	}
	var o Options
	if err := json.Unmarshal(b, &o); err != nil {
		log.Error("decoding options", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if prof := os.Getenv("SNOMPROV_DHCP_CPUPROFILE"); prof != "" { // for bench/dhcp.sh investigations
		if f, err := os.Create(prof); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	s, err := New(o, log, nil)
	if err == nil {
		err = s.Bind(ctx)
	}
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	log.Info("ready")
	if err := s.Serve(ctx); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

func startHelper(t *testing.T, h *lantest.Host, optsPath string) *lantest.Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := h.Start("env", "SNOMPROV_DHCP_HELPER="+optsPath, exe)
	if err := p.WaitOutput("msg=ready", 10*time.Second); err != nil {
		t.Fatalf("helper server: %v\n%s", err, p.Output())
	}
	return p
}

// TestLANKill9UnderLoad: count ACKs while 3000 phones are leasing through a
// relay into a relayed subnet (a /16 with a 4k pool: 3000 phones do not fit
// the LAN's /24), SIGKILL the server mid-storm, restart it, and check that
// every ACKed lease is still held: on disk, and by renewing onto the same
// address. (test/e2e's TestDHCPKill9UnderLoad does the same for the LAN's
// own subnet.)
func TestLANKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	l, srv := newLAN(t)
	relay := l.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.2/24"})
	for _, args := range [][]string{{"-n", relay.NS, "addr", "add", "10.90.0.2/16", "dev", "eth0"}, {"-n", srv.NS, "route", "add", "10.90.0.0/16", "via", "10.77.0.2"}} {
		run(t, srv, 10*time.Second, "ip", args...)
	}
	o := lanOptions(t)
	o.ConflictProbe = -1 // the storm is about durability, not probing
	o.Subnets = []Options{{
		ServerIP: o.ServerIP, Subnet: netip.MustParsePrefix("10.90.0.0/16"), UpdateServer: testURL,
		PoolStart: netip.MustParseAddr("10.90.16.0"), PoolEnd: netip.MustParseAddr("10.90.31.254"),
	}}
	optsPath := filepath.Join(t.TempDir(), "opts.json")
	b, _ := json.Marshal(o)
	if err := os.WriteFile(optsPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, srv, optsPath)
	rc := dhcptest.NewRelay(t, relay, netip.MustParseAddr("10.90.0.2"), netip.MustParseAddr("10.77.0.1"))

	const phones = 3000
	var stopStorm atomic.Bool
	go rc.Storm(phones, 0x55, &stopStorm)
	deadline := time.Now().Add(20 * time.Second)
	for len(rc.Acked()) < 500 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Signal(unix.SIGKILL)
	<-p.Done()
	stopStorm.Store(true)
	time.Sleep(300 * time.Millisecond) // ACKs already on the wire still count
	acked := rc.Acked()
	if len(acked) < 500 {
		t.Fatalf("only %d ACKs before the kill\n%s", len(acked), p.Output())
	}
	if len(acked) >= phones {
		t.Fatalf("the storm finished before the kill (%d ACKs); the test proves nothing", len(acked))
	}
	t.Logf("%d ACKs counted before SIGKILL", len(acked))

	leases, err := LoadLeases(o.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[netip.Addr]Lease{}
	for _, l := range leases {
		onDisk[l.IP] = l
	}
	for hw, ip := range acked {
		if !o.Subnets[0].Subnet.Contains(ip) {
			t.Errorf("%s was ACKed %v, outside the relayed subnet", hw, ip)
		}
		if l, ok := onDisk[ip]; !ok || l.State != StateBound || l.MAC.Colon() != hw && !macEqual(l.MAC[:], hw) {
			t.Errorf("ACKed %s -> %v missing on disk after kill -9 (%+v)", hw, ip, l)
		}
	}

	startHelper(t, srv, optsPath)
	// Renew every ACKed lease: RENEWING state via the relay (ciaddr set).
	rc.Reset()
	rc.Renew(acked, 10)
	renewed, naks := rc.Acked(), rc.NAKs()
	t.Logf("after restart: %d ACKs, %d NAKs", len(renewed), naks)
	if naks > 0 {
		t.Errorf("%d renewals NAKed after restart", naks)
	}
	for hw, ip := range acked {
		if got := renewed[hw]; got != ip {
			t.Errorf("%s renewed onto %v, had %v", hw, got, ip)
		}
	}
}

func macEqual(a []byte, s string) bool { return net.HardwareAddr(a).String() == s }
