package e2e

// Several DHCP subnets in one appliance, end to end: the real binary on a
// trunk port with two VLAN sub-interfaces (local [[dhcp.subnets]]) and a
// relayed subnet behind a relay host. dhclient on each VLAN of one phone
// veth, a PnP SUBSCRIBE on each VLAN, and the relay's DISCOVER/REQUEST
// built with insomniacslk's dhcpv4 setting giaddr.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/internal/pnptraces"
)

// subnetsTOML follows dhcpConfigTOML: three subnets beside the LAN's.
const subnetsTOML = `dns = ["10.77.0.53"]

[[dhcp.subnets]]
network = "10.10.0.0/24"
interface = "%[1]s"
pool = "10.10.0.100-10.10.0.199"
router = "10.10.0.254"

[[dhcp.subnets]]
network = "10.20.0.0/24"
interface = "%[2]s"
pool = "10.20.0.100-10.20.0.199"
router = "10.20.0.254"
dns = ["10.20.0.53"]

[[dhcp.subnets]]
network = "10.30.0.0/24"
pool = "10.30.0.100-10.30.0.199"
router = "10.30.0.1"
dns = ["10.30.0.53"]
`

// segment gives srv and ph a link of their own for subnet id: the VLAN
// sub-interface eth0.<id> on both ends of their veths (802.1Q through the
// LAN's bridge) or, on a kernel without 802.1Q, a veth pair "vl<id>"
// between the two namespaces, which isolates the subnet the same way
// (test/vm runs this test on a kernel with 802.1Q, and fails if it took
// the veth pairs).
// srvAddr is the server's address there; the phone's end gets phMAC and no
// address (a phone of its own on each subnet, so one client is not on two
// subnets at once). It returns the interface name, the same on both ends.
func segment(t *testing.T, srv, ph *lantest.Host, id int, srvAddr, phMAC string) string {
	t.Helper()
	ip := func(h *lantest.Host, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := h.Run(ctx, "ip", args...)
		if err != nil {
			return fmt.Errorf("ip %v in %s: %w\n%s", args, h.Name, err, out)
		}
		return nil
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("eth0.%d", id)
	if err := ip(srv, "link", "add", "link", "eth0", "name", name, "type", "vlan", "id", fmt.Sprint(id)); err != nil {
		if !strings.Contains(err.Error(), "Unknown device type") {
			t.Fatal(err)
		}
		t.Logf("this kernel has no 802.1Q VLANs; subnet %d gets a veth pair of its own instead", id)
		name = fmt.Sprintf("vl%d", id)
		must(ip(srv, "link", "add", name, "type", "veth", "peer", "name", name, "netns", ph.NS))
		must(ip(ph, "link", "set", name, "address", phMAC))
	} else {
		must(ip(ph, "link", "add", "link", "eth0", "name", name, "address", phMAC, "type", "vlan", "id", fmt.Sprint(id)))
	}
	must(ip(srv, "addr", "add", srvAddr, "dev", name))
	must(ip(srv, "link", "set", name, "up"))
	must(ip(ph, "link", "set", name, "up"))
	return name
}

func TestSubnetsVLANsAndRelay(t *testing.T) {
	needTool(t, "dhclient")
	bin := binary(t)
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	ph := l.AddHost("ph", lantest.HostOptions{MAC: "00:04:13:77:00:01"})
	if10 := segment(t, srv, ph, 10, "10.10.0.1/24", "00:04:13:10:00:01")
	if20 := segment(t, srv, ph, 20, "10.20.0.1/24", "00:04:13:20:00:01")
	// The relay: on the LAN as 10.77.0.2, and 10.30.0.1 on the phones' side.
	relay := l.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.2/24"})
	for _, a := range [][]string{{"-n", relay.NS, "addr", "add", "10.30.0.1/24", "dev", "eth0"},
		{"-n", srv.NS, "route", "add", "10.30.0.0/24", "via", "10.77.0.2"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := srv.Run(ctx, "ip", a...)
		cancel()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", a, err, out)
		}
	}

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(dhcpConfigTOML, dir, "10.77.0.100-10.77.0.199")+fmt.Sprintf(subnetsTOML, if10, if20))
	if out, err := srv.Run(context.Background(), bin, "check", "-config", cfg); err != nil {
		t.Fatalf("snomprov check on the machine: %v\n%s", err, out)
	}
	serve := srv.Start(bin, "serve", "-config", cfg)
	if err := serve.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("snomprov serve: %v\n%s", err, serve.Output())
	}
	time.Sleep(2500 * time.Millisecond) // the server looks for other DHCP servers for 2 s before answering

	for _, v := range []struct {
		iface, server, router string
		net                   netip.Prefix
	}{
		{if10, "10.10.0.1", "10.10.0.254", netip.MustParsePrefix("10.10.0.0/24")},
		{if20, "10.20.0.1", "10.20.0.254", netip.MustParsePrefix("10.20.0.0/24")},
	} {
		t.Run("dhclient on "+v.iface, func(t *testing.T) {
			res := dhclientOn(t, ph, v.iface)
			ip, err := netip.ParseAddr(res["ip"])
			if err != nil || !v.net.Contains(ip) || ip.As4()[3] < 100 || ip.As4()[3] > 199 {
				t.Errorf("leased %q, want an address of %v's pool", res["ip"], v.net)
			}
			url := "http://" + v.server + ":8080/"
			if res["opt66"] != url || res["routers"] != v.router || res["server"] != v.server {
				t.Errorf("got %v, want option 66 %s, router %s, server %s\nserver log:\n%s", res, url, v.router, v.server, serve.Output())
			}
		})
		t.Run("PnP on "+v.iface, func(t *testing.T) {
			local := netip.MustParseAddr(dhclientAddr(t, ph, v.iface))
			n := pnpSubscribeOn(t, ph, v.iface, local)
			if want := "http://" + v.server + ":8080/"; n != want {
				t.Errorf("NOTIFY on %s carries %q, want %q", v.iface, n, want)
			}
		})
	}

	t.Run("relayed", func(t *testing.T) {
		offer, ack := relayDORA(t, relay, net.HardwareAddr{0, 4, 0x13, 0x30, 0, 1})
		// A relay on a network served nowhere gets nothing.
		err := onRelay(relay, func(c *net.UDPConn) error {
			stray, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0, 4, 0x13, 0x40, 0, 1}, dhcpv4.WithGatewayIP(net.IPv4(10, 40, 0, 1)))
			if m, err := relayExchange(c, appliance, stray, dhcpv4.MessageTypeOffer); err == nil {
				return fmt.Errorf("a relay of no served subnet got %v", m.MessageType())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
		if !netip.MustParsePrefix("10.30.0.0/24").Contains(ip) || !offer.YourIPAddr.Equal(ack.YourIPAddr) {
			t.Errorf("relayed ACK for %v (offer %v)", ip, offer.YourIPAddr)
		}
		if !routerIs(ack, "10.30.0.1") {
			t.Errorf("router %v", ack.Router())
		}
		if d := ack.DNS(); len(d) != 1 || !d[0].Equal(net.IPv4(10, 30, 0, 53)) {
			t.Errorf("dns %v", d)
		}
		if ack.TFTPServerName() != "http://10.77.0.1:8080/" || !ack.ServerIdentifier().Equal(net.IPv4(10, 77, 0, 1)) {
			t.Errorf("option 66 %q, server %v", ack.TFTPServerName(), ack.ServerIdentifier())
		}
		waitLog(t, serve, "no subnet served here matches it")

		// At T1 the phone renews by unicast from its address straight to
		// option 54, not through the relay; the ACK comes back to it.
		run := func(args ...string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if out, err := relay.Run(ctx, "ip", args...); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
		run("addr", "add", ip.String()+"/32", "dev", "eth0")
		var renewed *dhcpv4.DHCPv4
		err = relay.Do(func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip.AsSlice(), Port: 68})
			if err != nil {
				return err
			}
			defer c.Close()
			req, _ := dhcpv4.New(dhcpv4.WithHwAddr(ack.ClientHWAddr), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithClientIP(ack.YourIPAddr), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")))
			renewed, err = relayExchange(c, appliance, req, dhcpv4.MessageTypeAck)
			return err
		})
		if err != nil {
			t.Fatalf("direct renewal: %v\nserver log:\n%s", err, serve.Output())
		}
		if !renewed.YourIPAddr.Equal(ack.YourIPAddr) || !routerIs(renewed, "10.30.0.1") {
			t.Errorf("renewed %v with router %v", renewed.YourIPAddr, renewed.Router())
		}
	})

	// SIGHUP: a relayed subnet's new router is served at once; a subnet on
	// a new interface needs a restart, and that reload changes nothing.
	t.Run("reload", func(t *testing.T) {
		text, _ := os.ReadFile(cfg)
		os.WriteFile(cfg, []byte(strings.Replace(string(text), `router = "10.30.0.1"`, `router = "10.30.0.2"`, 1)), 0o644)
		serve.Signal(unix.SIGHUP)
		waitLog(t, serve, "configuration reloaded")
		if _, ack := relayDORA(t, relay, net.HardwareAddr{0, 4, 0x13, 0x30, 1, 2}); !routerIs(ack, "10.30.0.2") {
			t.Errorf("after the reload the router is %v, want 10.30.0.2", ack.Router())
		}
		if40 := segment(t, srv, ph, 40, "10.40.0.1/24", "00:04:13:40:00:01")
		os.WriteFile(cfg, append(text, fmt.Sprintf("\n[[dhcp.subnets]]\nnetwork = \"10.40.0.0/24\"\ninterface = %q\npool = \"10.40.0.100-10.40.0.199\"\n", if40)...), 0o644)
		serve.Signal(unix.SIGHUP)
		waitLog(t, serve, "needs a restart")
		// text has the old router: a reload that went through would bring it back.
		if _, ack := relayDORA(t, relay, net.HardwareAddr{0, 4, 0x13, 0x30, 1, 3}); !routerIs(ack, "10.30.0.2") {
			t.Errorf("a refused reload changed the router to %v", ack.Router())
		}
	})
}

// waitLog waits until the server has logged s.
func waitLog(t *testing.T, p *lantest.Process, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never logged %q:\n%s", s, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appliance is where the relay forwards to.
var appliance = &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}

// onRelay runs fn with the relay's socket, 10.30.0.1:67 in relay.
func onRelay(relay *lantest.Host, fn func(c *net.UDPConn) error) error {
	return relay.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 30, 0, 1), Port: 67})
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(c)
	})
}

// relayDORA runs one DORA for a Snom phone hw through the relay, giaddr
// 10.30.0.1, and returns the OFFER and the ACK.
func relayDORA(t *testing.T, relay *lantest.Host, hw net.HardwareAddr) (offer, ack *dhcpv4.DHCPv4) {
	t.Helper()
	err := onRelay(relay, func(c *net.UDPConn) error {
		gi := dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1))
		d, _ := dhcpv4.NewDiscovery(hw, gi, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")))
		var err error
		if offer, err = relayExchange(c, appliance, d, dhcpv4.MessageTypeOffer); err != nil {
			return err
		}
		r, _ := dhcpv4.NewRequestFromOffer(offer, gi)
		ack, err = relayExchange(c, appliance, r, dhcpv4.MessageTypeAck)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return offer, ack
}

func routerIs(m *dhcpv4.DHCPv4, want string) bool {
	r := m.Router()
	return len(r) == 1 && r[0].Equal(net.ParseIP(want))
}

// relayExchange sends m to the server and waits for the reply of type want
// with m's transaction ID at the relay's socket.
func relayExchange(c *net.UDPConn, to *net.UDPAddr, m *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := c.WriteTo(m.ToBytes(), to); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && r.TransactionID == m.TransactionID && r.MessageType() == want {
				return r, nil
			}
		}
	}
	return nil, fmt.Errorf("no %v for %v", want, m.MessageType())
}

// dhclientOn runs dhclient once on iface of h and returns what its hook saw.
func dhclientOn(t *testing.T, h *lantest.Host, iface string) map[string]string {
	t.Helper()
	d := t.TempDir()
	conf := filepath.Join(d, "dhclient.conf")
	hook := filepath.Join(d, "hook.sh")
	os.WriteFile(conf, []byte("send vendor-class-identifier \"snomD785\";\nrequest subnet-mask, routers, domain-name-servers, tftp-server-name, bootfile-name;\n"), 0o644)
	// dhclient wipes the environment; the hook writes next to itself.
	os.WriteFile(hook, []byte(`#!/bin/sh
case "$reason" in BOUND|REBOOT|RENEW)
  ip -4 addr replace "$new_ip_address/24" dev "$interface"
  echo "ip=$new_ip_address opt66=$new_tftp_server_name opt67=$new_bootfile_name routers=$new_routers server=$new_dhcp_server_identifier" >"$(dirname "$0")/result" ;;
esac
exit 0
`), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if out, err := h.Run(ctx, "dhclient", "-4", "-1", "-cf", conf, "-sf", hook, "-pf", filepath.Join(d, "pid"), "-lf", filepath.Join(d, "leases"), iface); err != nil {
		t.Fatalf("dhclient on %s: %v\n%s", iface, err, out)
	}
	b, _ := os.ReadFile(filepath.Join(d, "result"))
	res := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		res[k] = v
	}
	return res
}

// dhclientAddr is iface's IPv4 address in h (the one dhclient's hook set).
func dhclientAddr(t *testing.T, h *lantest.Host, iface string) string {
	t.Helper()
	var addr string
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				addr = ipn.IP.String()
				return nil
			}
		}
		return fmt.Errorf("%s has no IPv4 address", iface)
	})
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// pnpSubscribeOn multicasts the D120's SUBSCRIBE from local on iface and
// returns the URL of the NOTIFY that answers it (after the 200 OK).
func pnpSubscribeOn(t *testing.T, h *lantest.Host, iface string, local netip.Addr) string {
	t.Helper()
	var p pnpPhone
	p.ip = local.String()
	err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice(), Port: 5060})
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			c.Close()
			return err
		}
		if err := ipv4.NewPacketConn(c).SetMulticastInterface(ifi); err != nil {
			c.Close()
			return err
		}
		p.conn = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	tr := pnptraces.Documented[2]
	for try := 0; try < 3; try++ {
		p.send(t, tr.Build(p.ip), "224.0.1.75:5060")
		for m := p.recv(2 * time.Second); m != nil; m = p.recv(2 * time.Second) {
			if strings.HasPrefix(m.start, "NOTIFY ") {
				p.answer200(t, m)
				return m.body
			}
		}
	}
	t.Fatalf("no NOTIFY on %s", iface)
	return ""
}
