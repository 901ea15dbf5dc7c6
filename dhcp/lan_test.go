package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
)

const testURL = "http://10.77.0.1:8080/"

// lanOptions are the options of a server at 10.77.0.1 on a lantest LAN.
func lanOptions(t *testing.T) Options {
	o := baseOptions(t.TempDir())
	o.Interface = "eth0"
	o.UpdateServer = testURL
	o.ConflictProbe = 0 // default: probe on
	return o
}

type running struct {
	*Server
	cancel context.CancelFunc
	done   chan error
}

// serveIn binds s inside host h's namespace and serves until the test ends.
func serveIn(t *testing.T, h *lantest.Host, o Options, rec *recorder) *running {
	t.Helper()
	s, err := New(o, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Do(func() error { return s.Bind(ctx) }); err != nil {
		cancel()
		t.Fatalf("bind: %v", err)
	}
	r := &running{Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil && !errors.Is(err, ErrOtherServer) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return r
}

type recorder struct{ testServer }

func newLAN(t *testing.T) (*lantest.LAN, *lantest.Host) {
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	return l, srv
}

// hookDir copies the client hook into a fresh directory; results.txt appears there.
func hookDir(t *testing.T) string {
	d := t.TempDir()
	for _, f := range []string{"hook.sh", "dhcpcd.conf", "dhclient.conf", "dhclient-no66.conf"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// result finds the hook's line for client, waiting a little for daemons.
func result(t *testing.T, dir, client string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "results.txt"))
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "DHCP-RESULT client="+client+" ") {
				m := map[string]string{}
				for _, f := range strings.Fields(line)[1:] {
					k, v, _ := strings.Cut(f, "=")
					m[k] = v
				}
				if m["ip"] != "" {
					return m
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s produced no lease; hook output:\n%s", client, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func need(t *testing.T, tool string) {
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
}

func run(t *testing.T, h *lantest.Host, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, h.Name, err, out)
	}
	return out
}

// TestLANRealClients: udhcpc, dhclient (with and without asking for 66/67),
// dhcpcd and nclient4 get leases and see options 66/67.
func TestLANRealClients(t *testing.T) {
	for _, tool := range []string{"udhcpc", "dhclient", "dhcpcd"} {
		need(t, tool)
	}
	l, srv := newLAN(t)
	o := lanOptions(t)
	o.UpdateFilename = "snom.htm"
	rec := &recorder{}
	r := serveIn(t, srv, o, rec)
	hooks := hookDir(t)
	hook := filepath.Join(hooks, "hook.sh")

	t.Run("udhcpc", func(t *testing.T) {
		h := l.AddHost("udhcpc", lantest.HostOptions{MAC: "00:04:13:77:00:01"})
		run(t, h, 20*time.Second, "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-O", "tftp", "-O", "bootfile", "-s", hook)
		res := result(t, hooks, "udhcpc")
		// busybox validates option 66 as a host name and shows a URL as "bad"
		// (lan README pitfall 7); it did receive it. 67 is shown verbatim.
		if !r.pool.inPool(netip.MustParseAddr(res["ip"])) || res["opt66"] != "bad" || res["opt67"] != "snom.htm" || res["server"] != "10.77.0.1" {
			t.Errorf("udhcpc: %v", res)
		}
	})
	t.Run("dhclient", func(t *testing.T) {
		h := l.AddHost("dhclient", lantest.HostOptions{MAC: "00:04:13:77:00:02"})
		d := t.TempDir()
		run(t, h, 30*time.Second, "dhclient", "-4", "-1", "-cf", filepath.Join(hooks, "dhclient.conf"), "-sf", hook,
			"-pf", filepath.Join(d, "pid"), "-lf", filepath.Join(d, "leases"), "eth0")
		res := result(t, hooks, "dhclient")
		if res["opt66"] != testURL || res["opt67"] != "snom.htm" || res["server"] != "10.77.0.1" {
			t.Errorf("dhclient: %v", res)
		}
		// Release: the lease is marked released on disk.
		run(t, h, 20*time.Second, "dhclient", "-4", "-r", "-cf", filepath.Join(hooks, "dhclient.conf"), "-sf", hook,
			"-pf", filepath.Join(d, "pid"), "-lf", filepath.Join(d, "leases"), "eth0")
		waitLease(t, o.StateDir, res["ip"], StateReleased)
	})
	t.Run("dhcpcd", func(t *testing.T) {
		h := l.AddHost("dhcpcd", lantest.HostOptions{MAC: "00:04:13:77:00:03"})
		// Private /run and /var/lib/dhcpcd inside the mount namespace that
		// `ip netns exec` creates, so dhcpcd touches no host state.
		run(t, h, 30*time.Second, "sh", "-c", "mount -t tmpfs none /run && mount -t tmpfs none /var/lib/dhcpcd && exec dhcpcd -f "+
			filepath.Join(hooks, "dhcpcd.conf")+" -c "+hook+" -4 -1 -w -t 15 eth0")
		res := result(t, hooks, "dhcpcd")
		if res["opt66"] != testURL || res["opt67"] != "snom.htm" {
			t.Errorf("dhcpcd: %v", res)
		}
	})
	t.Run("dhclient phone not requesting 66/67", func(t *testing.T) {
		h := l.AddHost("quiet", lantest.HostOptions{MAC: "00:04:13:77:00:04"})
		d := t.TempDir()
		os.Remove(filepath.Join(hooks, "results.txt"))
		run(t, h, 30*time.Second, "dhclient", "-4", "-1", "-cf", filepath.Join(hooks, "dhclient-no66.conf"), "-sf", hook,
			"-pf", filepath.Join(d, "pid"), "-lf", filepath.Join(d, "leases"), "eth0")
		leases, _ := os.ReadFile(filepath.Join(d, "leases"))
		// dhclient exports only options it requested, but records every
		// received option in its lease file: 66/67 were sent anyway.
		if !strings.Contains(string(leases), `tftp-server-name "`+testURL+`"`) || !strings.Contains(string(leases), `bootfile-name "snom.htm"`) {
			t.Errorf("forced 66/67 missing from dhclient's lease:\n%s", leases)
		}
	})
	t.Run("dhclient PC not requesting 66/67", func(t *testing.T) {
		h := l.AddHost("pc", lantest.HostOptions{MAC: "02:00:00:77:00:05"})
		d := t.TempDir()
		run(t, h, 30*time.Second, "dhclient", "-4", "-1", "-cf", filepath.Join(hooks, "dhclient-no66.conf"), "-sf", hook,
			"-pf", filepath.Join(d, "pid"), "-lf", filepath.Join(d, "leases"), "eth0")
		leases, _ := os.ReadFile(filepath.Join(d, "leases"))
		if !strings.Contains(string(leases), "fixed-address") || strings.Contains(string(leases), "tftp-server-name") {
			t.Errorf("PC lease should have an address and no 66:\n%s", leases)
		}
	})
	t.Run("nclient4", func(t *testing.T) {
		h := l.AddHost("nclient", lantest.HostOptions{MAC: "00:04:13:77:00:06"})
		ack := nclientLease(t, h, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")))
		if ack.TFTPServerName() != testURL || ack.BootFileNameOption() != "snom.htm" || !r.pool.inPool(addrOf(ack.YourIPAddr)) {
			t.Errorf("nclient4 ACK: %v", ack.Summary())
		}
		found := false
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, ob := range rec.obs {
			if ob.Event.Kind == "ACK" && ob.Model == "snomD785" && ob.IP == addrOf(ack.YourIPAddr) {
				found = true
			}
		}
		if !found {
			t.Errorf("no inventory ACK with model snomD785: %+v", rec.obs)
		}
	})
	if used, _ := r.PoolUsage(); used < 4 {
		t.Errorf("pool usage %d after the clients", used)
	}
}

func waitLease(t *testing.T, dir, ip, state string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := LoadLeases(dir)
		if err == nil && hasState(l, netip.MustParseAddr(ip), state) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s never became %s: %v %v", ip, state, l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLANConflictProbe: a host squatting on the first pool address without
// a lease answers ping; the server skips it and quarantines it.
func TestLANConflictProbe(t *testing.T) {
	l, srv := newLAN(t)
	l.AddHost("squatter", lantest.HostOptions{Addr: "10.77.0.100/24"})
	o := lanOptions(t)
	r := serveIn(t, srv, o, &recorder{})
	if r.prober == nil {
		t.Fatal("no ICMP prober in the server namespace")
	}
	h := l.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:10"})
	ack := nclientLease(t, h)
	if ip := addrOf(ack.YourIPAddr); ip == netip.MustParseAddr("10.77.0.100") || !r.pool.inPool(ip) {
		t.Fatalf("got %v", ip)
	}
	waitLease(t, o.StateDir, "10.77.0.100", StateDeclined)
}

func nclientLease(t *testing.T, h *lantest.Host, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	var lease *nclient4.Lease
	err := h.Do(func() (err error) {
		lease, err = nclientRequest(mods...)
		return err
	})
	if err != nil {
		t.Fatalf("nclient4 in %s: %v", h.Name, err)
	}
	return lease.ACK
}

// nclientRequest runs one DORA with nclient4 on eth0 of the namespace the
// calling thread is in (call it inside Host.Do).
func nclientRequest(mods ...dhcpv4.Modifier) (*nclient4.Lease, error) {
	c, err := nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Request(ctx, mods...)
}

// TestLANPortInUse: a second server on the same interface fails at Bind
// with a message naming the problem (no SO_REUSEPORT sharing).
func TestLANPortInUse(t *testing.T) {
	_, srv := newLAN(t)
	serveIn(t, srv, lanOptions(t), &recorder{})
	o2 := lanOptions(t)
	s2, err := New(o2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Do(func() error { return s2.Bind(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "eth0") {
		t.Fatalf("second server: %v", err)
	}
}

// TestLANPortInUseByDnsmasq: the same against dnsmasq.
func TestLANPortInUseByDnsmasq(t *testing.T) {
	need(t, "dnsmasq")
	_, srv := newLAN(t)
	p := startDnsmasq(t, srv, "--dhcp-range=10.77.0.100,10.77.0.200,1h")
	s, _ := New(lanOptions(t), nil, nil)
	err := srv.Do(func() error { return s.Bind(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("bind next to dnsmasq: %v\n%s", err, p.Output())
	}
}

// startDnsmasq runs dnsmasq as a DHCP server on h's eth0 (no DNS; leases
// and pid file in a temp dir) with args, and waits until it listens.
func startDnsmasq(t *testing.T, h *lantest.Host, args ...string) *lantest.Process {
	t.Helper()
	d := t.TempDir()
	p := h.Start("dnsmasq", append([]string{"-k", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-leasefile=" + filepath.Join(d, "leases"), "--pid-file=" + filepath.Join(d, "pid"), "--log-facility=-"}, args...)...)
	waitUDP(t, h, 67)
	return p
}

func waitUDP(t *testing.T, h *lantest.Host, port int) {
	t.Helper()
	if err := h.WaitListen("udp", port, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestLANOtherServer: a dnsmasq elsewhere on the segment makes Serve return
// ErrOtherServer naming it and its 66; allow_other_servers serves anyway.
func TestLANOtherServer(t *testing.T) {
	need(t, "dnsmasq")
	l, srv := newLAN(t)
	rogue := l.AddHost("rogue", lantest.HostOptions{Addr: "10.77.0.2/24"})
	startDnsmasq(t, rogue, "--no-ping", "--dhcp-range=10.77.0.210,10.77.0.220,1h", "--dhcp-option-force=66,http://rogue.example/")

	o := lanOptions(t)
	o.OtherServerWait = 0 // the default check
	s, _ := New(o, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Do(func() error { return s.Bind(ctx) }); err != nil {
		t.Fatal(err)
	}
	err := s.Serve(ctx)
	if !errors.Is(err, ErrOtherServer) || !strings.Contains(err.Error(), "10.77.0.2") || !strings.Contains(err.Error(), "http://rogue.example/") {
		t.Fatalf("Serve = %v", err)
	}
	// The port is free again for the override.
	o2 := lanOptions(t)
	o2.AllowOtherServers = true
	o2.Serve = ServePhones
	rec := &recorder{}
	serveIn(t, srv, o2, rec)
	phone := l.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:20"})
	nclientLease(t, phone, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	took := false
	for _, ob := range rec.obs { // workers run in parallel: any order
		took = took || ob.Event.Kind == "DISCOVER" && ob.Model == "snomD785"
	}
	if !took {
		t.Fatalf("with allow_other_servers our server did not take the phone's DISCOVER: %+v", rec.obs)
	}
}

// TestLANNoPoolBesideOtherServer: with no pool in [dhcp] (relays only),
// the LAN's own DHCP server is expected: the start-up search does not stop
// the server, a LAN phone's DISCOVER is left to that server, and a relayed
// DISCOVER is answered at its relay with the LAN address as option 54.
func TestLANNoPoolBesideOtherServer(t *testing.T) {
	need(t, "dnsmasq")
	l, srv := newLAN(t)
	router := l.AddHost("router", lantest.HostOptions{Addr: "10.77.0.2/24"})
	startDnsmasq(t, router, "--no-ping", "--dhcp-range=10.77.0.210,10.77.0.220,1h")
	// The relay sits in both: 10.77.0.3 on the LAN, 10.30.0.1 its relayed link.
	relay := l.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.3/24"})
	run(t, relay, 5*time.Second, "ip", "addr", "add", "10.30.0.1/24", "dev", "eth0")
	run(t, srv, 5*time.Second, "ip", "route", "add", "10.30.0.0/24", "via", "10.77.0.3")

	o := lanOptions(t)
	o.PoolStart, o.PoolEnd = netip.Addr{}, netip.Addr{}
	o.OtherServerWait = 0 // the default search
	o.Subnets = []Options{relayedSubnet()}
	r := serveIn(t, srv, o, &recorder{})

	ack := nclientLease(t, l.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:40"}))
	if sid := addrOf(ack.ServerIdentifier()); sid != a4("10.77.0.2") {
		t.Errorf("the LAN phone was served by %v, want the router's server", sid)
	}
	if r.NotServed() == 0 {
		t.Error("the LAN phone's DISCOVER was not counted as left to the LAN's server")
	}
	err := relay.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 30, 0, 1), Port: 67})
		if err != nil {
			return err
		}
		defer c.Close()
		disc := discover("00:04:13:30:00:40", dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1)))
		m, err := relayedOffer(c, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}, disc)
		if err != nil {
			return err
		}
		if ip, sid := addrOf(m.YourIPAddr), addrOf(m.ServerIdentifier()); !p4("10.30.0.0/24").Contains(ip) || sid != a4("10.77.0.1") {
			return fmt.Errorf("relayed OFFER of %v from %v", ip, sid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// relayedOffer sends d from the relay's socket c to the server and returns
// the OFFER that answers it, skipping anything else that arrives.
func relayedOffer(c *net.UDPConn, server *net.UDPAddr, d *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if _, err := c.WriteTo(d.ToBytes(), server); err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return nil, fmt.Errorf("no relayed OFFER: %w", err)
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err == nil && m.TransactionID == d.TransactionID && m.MessageType() == dhcpv4.MessageTypeOffer {
			return m, nil
		}
	}
}

// TestLANGarbageAndRelay: garbage datagrams do not disturb the server; a
// relayed request (giaddr) is answered at the relay.
func TestLANGarbageAndRelay(t *testing.T) {
	l, srv := newLAN(t)
	r := serveIn(t, srv, lanOptions(t), &recorder{})
	relay := l.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.2/24"})
	err := relay.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 67})
		if err != nil {
			return err
		}
		defer c.Close()
		srvAddr := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}
		junk := [][]byte{{}, {1}, make([]byte, 300), []byte("GET / HTTP/1.0\r\n\r\n"), append([]byte{1, 1, 6, 0}, make([]byte, 1000)...)}
		for i := 0; i < 200; i++ {
			if _, err := c.WriteTo(junk[i%len(junk)], srvAddr); err != nil {
				return err
			}
		}
		d := discover("00:04:13:77:00:30", dhcpv4.WithGatewayIP(net.IPv4(10, 77, 0, 2)))
		m, err := relayedOffer(c, srvAddr, d)
		if err != nil {
			return err
		}
		if !r.pool.inPool(addrOf(m.YourIPAddr)) {
			return fmt.Errorf("offer %v", m.YourIPAddr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Still serving direct clients.
	nclientLease(t, l.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:31"}))
}

// TestLANUdhcpcRenewRelease: busybox udhcpc renews (SIGUSR1, unicast with
// ciaddr) onto the same address, then releases it (SIGUSR2).
func TestLANUdhcpcRenewRelease(t *testing.T) {
	need(t, "udhcpc")
	l, srv := newLAN(t)
	o := lanOptions(t)
	o.UpdateFilename = "snom.htm"
	serveIn(t, srv, o, &recorder{})
	hooks := hookDir(t)
	h := l.AddHost("phone", lantest.HostOptions{MAC: "00:04:13:77:00:40"})
	p := h.Start("udhcpc", "-i", "eth0", "-f", "-t", "5", "-T", "1", "-O", "bootfile", "-s", filepath.Join(hooks, "hook.sh"))
	bound := result(t, hooks, "udhcpc")
	if bound["reason"] != "bound" {
		t.Fatalf("first event %v", bound)
	}
	p.Signal(unix.SIGUSR1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(hooks, "results.txt"))
		if strings.Contains(string(b), "client=udhcpc reason=renew ip="+bound["ip"]+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal onto %s:\n%s\n%s", bound["ip"], b, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Signal(unix.SIGUSR2)
	waitLease(t, o.StateDir, bound["ip"], StateReleased)
}

// TestLANL2UnicastRFC2131_4_1: the OFFER and ACK to a client with the
// broadcast flag clear and no address reach its MAC, not ff:ff:ff:ff:ff:ff
// (seen by a packet socket on the client's own interface); with the flag set
// they are broadcast. TestLANRealClients has udhcpc, dhclient and dhcpcd
// (none of which sets the flag) get their leases this way.
func TestLANL2UnicastRFC2131_4_1(t *testing.T) {
	l, srv := newLAN(t)
	r := serveIn(t, srv, lanOptions(t), &recorder{})
	if !r.l2unicast {
		t.Fatal("no packet socket in the server namespace")
	}
	for i, tt := range []struct {
		name      string
		broadcast bool
	}{{"flag clear: to the MAC", false}, {"flag set: broadcast", true}} {
		t.Run(tt.name, func(t *testing.T) {
			hw := fmt.Sprintf("00:04:13:77:00:%02x", 0x30+i)
			h := l.AddHost(fmt.Sprintf("l2c%d", i), lantest.HostOptions{MAC: hw})
			var frames []l2Frame
			err := h.Do(func() error {
				ifi, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				spy, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
				if err != nil {
					return err
				}
				defer spy.Close()
				if _, err := nclientRequest(dhcpv4.WithBroadcast(tt.broadcast)); err != nil {
					return err
				}
				frames = readReplies(spy, hw)
				return nil
			})
			if err != nil {
				t.Fatalf("nclient4 in %s: %v", h.Name, err)
			}
			want := hw
			if tt.broadcast {
				want = "ff:ff:ff:ff:ff:ff"
			}
			seen := map[dhcpv4.MessageType]bool{}
			for _, f := range frames {
				seen[f.typ] = true
				if f.dst.String() != want {
					t.Errorf("%v went to %v (IP %v), want %s", f.typ, f.dst, f.ip, want)
				}
			}
			if !seen[dhcpv4.MessageTypeOffer] || !seen[dhcpv4.MessageTypeAck] {
				t.Errorf("captured %v, want an OFFER and an ACK", frames)
			}
		})
	}
}

type l2Frame struct {
	typ dhcpv4.MessageType
	dst net.HardwareAddr
	ip  net.IP
}

// readReplies reads the Ethernet frames queued on spy and returns the DHCP
// replies for chaddr hw with their destination MAC and IP address.
func readReplies(spy *packet.Conn, hw string) []l2Frame {
	var out []l2Frame
	buf := make([]byte, 2048)
	for {
		spy.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := spy.ReadFrom(buf)
		if err != nil {
			return out
		}
		b := buf[:n]
		if len(b) < 14+20+8 || b[12] != 0x08 || b[13] != 0x00 || b[14+9] != unix.IPPROTO_UDP {
			continue
		}
		ihl := int(b[14]&0x0f) * 4
		udp := b[14+ihl:]
		if len(udp) < 8 || int(udp[2])<<8|int(udp[3]) != 68 {
			continue
		}
		m, err := dhcpv4.FromBytes(udp[8:])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.ClientHWAddr.String() != hw {
			continue
		}
		out = append(out, l2Frame{m.MessageType(), append(net.HardwareAddr(nil), b[:6]...), net.IP(append([]byte(nil), b[14+16:14+20]...))})
	}
}
