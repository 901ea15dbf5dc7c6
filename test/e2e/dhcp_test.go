package e2e

// DHCP end to end: `snomprov serve` with [dhcp] enabled in the server
// namespace of a simulated LAN; dhclient as a phone; the CLI's leases and
// phones views; and kill -9 of the real process under load.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/internal/dhcptest"
	"github.com/snomprov/snomprov/internal/lantest"
)

const dhcpConfigTOML = `
[server]
interface = "eth0"
advertise = "10.77.0.1"
state_dir = "%[1]s/state"

[http]
listen = ":8080"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "%[1]s/fw"

[pnp]
answer = "all"

[dhcp]
enabled = true
pool = "%[2]s"
router = "10.77.0.1"
update_filename = "snomD785.htm"
`

type dhcpEnv struct {
	lan   *lantest.LAN
	srv   *lantest.Host
	cfg   string
	state string
	serve *lantest.Process
}

func startDHCPEnv(t *testing.T, subnet, srvAddr, pool string) *dhcpEnv {
	t.Helper()
	binary(t) // build first: a build failure should not look like a LAN problem
	e := &dhcpEnv{lan: lantest.New(t, subnet)}
	e.srv = e.lan.AddHost("srv", lantest.HostOptions{Addr: srvAddr, MAC: "02:77:ff:00:00:01"})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.state = filepath.Join(dir, "state")
	e.cfg = writeConfig(t, fmt.Sprintf(dhcpConfigTOML, dir, pool))
	e.serve = e.start(t)
	return e
}

func (e *dhcpEnv) start(t *testing.T) *lantest.Process {
	t.Helper()
	p := e.srv.Start(binary(t), "serve", "-config", e.cfg)
	if err := p.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("snomprov serve: %v\n%s", err, p.Output())
	}
	return p
}

func (e *dhcpEnv) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := e.srv.Run(ctx, binary(t), append(args, "-config", e.cfg)...)
	if err != nil {
		t.Fatalf("snomprov %v: %v\n%s", args, err, out)
	}
	return out
}

// TestDHCPDhclientLeasesPhones: a phone (Snom OUI) gets a lease with the
// setting-server URL in option 66; `snomprov leases` and `snomprov phones`
// show it.
func TestDHCPDhclientLeasesPhones(t *testing.T) {
	needTool(t, "dhclient")
	e := startDHCPEnv(t, "10.77.0.0/24", "10.77.0.1/24", "10.77.0.100-10.77.0.199")
	ph := e.lan.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:01"})
	res := dhclientOn(t, ph, "eth0")
	if res["opt66"] != "http://10.77.0.1:8080/" || res["opt67"] != "snomD785.htm" || res["server"] != "10.77.0.1" {
		t.Fatalf("dhclient saw: %v\nserver:\n%s", res, e.serve.Output())
	}
	ip := res["ip"]

	leases := e.cli(t, "leases")
	if !strings.Contains(leases, ip) || !strings.Contains(leases, "00:04:13:77:00:01") || !strings.Contains(leases, "bound") {
		t.Errorf("snomprov leases:\n%s", leases)
	}
	// The inventory is flushed every 2 s.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := e.cli(t, "phones", "--json")
		if strings.Contains(out, `"dhcp"`) && strings.Contains(out, "snomD785") && strings.Contains(out, ip) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snomprov phones --json never showed the DHCP step:\n%s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestDHCPKill9UnderLoad: phones lease through a relay while the real
// process is SIGKILLed; every ACK counted before the kill is on disk after
// it, and after a restart every client renews onto its address.
func TestDHCPKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	e := startDHCPEnv(t, "10.77.0.0/16", "10.77.0.1/16", "10.77.16.0-10.77.31.254")
	rh := e.lan.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.2/16"})
	r := dhcptest.NewRelay(t, rh, netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("10.77.0.1"))
	time.Sleep(2500 * time.Millisecond) // the server looks for other DHCP servers for 2 s before answering

	const phones = 3000
	var stopStorm atomic.Bool
	go r.Storm(phones, 0x66, &stopStorm)
	deadline := time.Now().Add(30 * time.Second)
	for len(r.Acked()) < 500 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	e.serve.Signal(unix.SIGKILL)
	<-e.serve.Done()
	stopStorm.Store(true)
	time.Sleep(300 * time.Millisecond)
	acked := r.Acked()
	if len(acked) < 500 || len(acked) >= phones {
		t.Fatalf("%d ACKs before the kill: the kill must land mid-storm\n%s", len(acked), e.serve.Output())
	}
	t.Logf("%d ACKs counted before SIGKILL", len(acked))

	leases, err := dhcp.LoadLeases(e.state)
	if err != nil {
		t.Fatal(err)
	}
	held := map[netip.Addr]string{}
	for _, l := range leases {
		if l.State == dhcp.StateBound {
			held[l.IP] = l.MAC.Colon()
		}
	}
	for hw, ip := range acked {
		if !strings.EqualFold(held[ip], hw) {
			t.Errorf("ACKed %s -> %v is not held after kill -9 (held by %q)", hw, ip, held[ip])
		}
	}

	e.serve = e.start(t)
	r.Reset()
	// Clients retransmit; so does this one (the first 2 s the server only
	// looks for other servers, and bursts can overflow socket buffers).
	r.Renew(acked, 20)
	renewed, naks := r.Acked(), r.NAKs()
	if naks > 0 {
		t.Errorf("%d renewals NAKed after the restart", naks)
	}
	for hw, ip := range acked {
		if renewed[hw] != ip {
			t.Errorf("%s renewed onto %v, had %v", hw, renewed[hw], ip)
		}
	}
}

// TestDHCPSecondInstanceRefused: a second snomprov with DHCP on the same
// interface exits with a message naming the busy DHCP port (no SO_REUSEPORT
// sharing of port 67).
func TestDHCPSecondInstanceRefused(t *testing.T) {
	e := startDHCPEnv(t, "10.77.0.0/24", "10.77.0.1/24", "10.77.0.100-10.77.0.199")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "fw"), 0o755)
	body := strings.Replace(fmt.Sprintf(dhcpConfigTOML, dir, "10.77.0.100-10.77.0.199"), `listen = ":8080"`, `listen = ":8081"`, 1)
	body = strings.Replace(body, "[pnp]\n", "[pnp]\nenabled = false\n", 1)
	cfg := writeConfig(t, body)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := e.srv.Run(ctx, binary(t), "serve", "-config", cfg)
	if err == nil || !strings.Contains(out, "port 67") || !strings.Contains(out, "already in use") {
		t.Fatalf("second instance: err=%v\n%s", err, out)
	}
	if strings.Contains(out, "msg=ready") {
		t.Errorf("second instance reported ready:\n%s", out)
	}
}
