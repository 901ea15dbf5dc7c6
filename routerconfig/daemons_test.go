package routerconfig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/internal/servetest"
)

// These tests load the generated snippets into the real daemons (dnsmasq,
// Kea, ISC dhcpd) on a simulated LAN (internal/lantest namespaces; nothing
// reaches a real interface) and ask them for leases with ISC dhclient, configured not to
// request options 66/67: a client that receives them proves the snippet
// forces them, matches Snom phones, and leaves other clients alone.
// (busybox udhcpc cannot be used: it replaces an option 66 that is not a
// valid host name, such as any URL, with "bad".)

const (
	lanSubnet  = "10.77.0.0/24"
	serverAddr = "10.77.0.1/24"
	testURL    = "http://10.77.0.1/"
	testFile   = "snom.htm"
)

// needTool skips (or fails under CI=true) when a daemon or client is missing.
func needTool(t *testing.T, name string) string { return servetest.NeedTool(t, name) }

// dhclientScript prints the lease and the two options on one line.
// new_tftp_server_name is option 66 and new_bootfile_name option 67; the
// BOOTP sname/file header fields would be new_server_name and new_filename,
// so they cannot pass for the options.
const dhclientScript = `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT) echo "LEASE ip=$new_ip_address server=${new_dhcp_server_identifier:-} opt66=${new_tftp_server_name:-} opt67=${new_bootfile_name:-}" ;;
esac
exit 0
`

type lease struct{ ip, server, opt66, opt67 string }

// client is one DHCP client on the LAN: its vendor class and MAC decide
// whether the snippet treats it as a Snom phone.
type client struct {
	name, mac, vendorClass string
	isPhone                bool
}

var clients = []client{
	{name: "d785", vendorClass: "snomD785", isPhone: true},          // matched by option 60
	{name: "oldsnom", mac: "00:04:13:77:00:02", isPhone: true},      // old firmware: Snom OUI, no option 60
	{name: "dect", mac: "00:08:7b:77:00:03", isPhone: true},         // DECT base OUI
	{name: "pc", vendorClass: "MSFT 5.0", mac: "02:aa:77:00:00:04"}, // not a phone
}

// getLease runs dhclient in h until it is bound and returns what it got.
func getLease(t *testing.T, h *lantest.Host, c client, dir string) lease {
	t.Helper()
	// Ask for what a PC asks for, not for 66/67 (Snom's request list is
	// unknown): the snippet has to send them anyway.
	conf := "request subnet-mask, broadcast-address, routers, domain-name-servers;\n"
	if c.vendorClass != "" {
		conf += fmt.Sprintf("send vendor-class-identifier %q;\n", c.vendorClass)
	}
	confPath := filepath.Join(dir, c.name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.Start("dhclient", "-4", "-d", "-1", "-cf", confPath, "-sf", filepath.Join(dir, "dhclient.sh"),
		"-pf", filepath.Join(dir, c.name+".pid"), "-lf", filepath.Join(dir, c.name+".leases"), "eth0")
	defer p.Stop()
	if err := p.WaitOutput("LEASE ", 30*time.Second); err != nil {
		t.Fatalf("dhclient in %s got no lease: %v\n%s", c.name, err, p.Output())
	}
	for _, line := range strings.Split(p.Output(), "\n") {
		rest, ok := strings.CutPrefix(line, "LEASE ")
		if !ok {
			continue
		}
		var l lease
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "ip":
				l.ip = v
			case "server":
				l.server = v
			case "opt66":
				l.opt66 = v
			case "opt67":
				l.opt67 = v
			}
		}
		return l
	}
	t.Fatalf("dhclient in %s printed no complete lease line:\n%s", c.name, p.Output())
	return lease{}
}

// checkClients leases an address for every client and checks that exactly
// the phones got options 66 and 67.
func checkClients(t *testing.T, l *lantest.LAN, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "dhclient.sh"), []byte(dhclientScript), 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := make([]*lantest.Host, len(clients))
	for i, c := range clients {
		hosts[i] = l.AddHost(c.name, lantest.HostOptions{MAC: c.mac})
	}
	for i, c := range clients {
		got := getLease(t, hosts[i], c, dir)
		if !strings.HasPrefix(got.ip, "10.77.0.") {
			t.Errorf("%s: leased %q, want an address in %s", c.name, got.ip, lanSubnet)
		}
		want := lease{ip: got.ip, server: got.server}
		if c.isPhone {
			want.opt66, want.opt67 = testURL, testFile
		}
		if got != want {
			t.Errorf("%s (vendor class %q, MAC %s): got option 66 %q, 67 %q; want %q, %q",
				c.name, c.vendorClass, hosts[i].MAC, got.opt66, got.opt67, want.opt66, want.opt67)
		}
	}
}

func TestDnsmasqLoadsSnippet(t *testing.T) {
	t.Parallel()
	dnsmasq := needTool(t, "dnsmasq")
	needTool(t, "dhclient")
	l := lantest.New(t, lanSubnet)
	srv := l.AddHost("srv", lantest.HostOptions{Addr: serverAddr})

	snippet, err := Generate(Dnsmasq, Params{SettingURL: testURL, Filename: testFile})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "snomprov.conf")
	if err := os.WriteFile(conf, []byte(snippet), 0o644); err != nil {
		t.Fatal(err)
	}
	p := srv.Start(dnsmasq, "--keep-in-foreground", "--conf-file="+conf,
		// No DNS, only eth0 of the server namespace, no ICMP probe delay.
		"--port=0", "--interface=eth0", "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-ping",
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,5m", "--dhcp-authoritative",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--user=root", "--log-dhcp", "--log-facility=-")
	if err := p.WaitOutput("DHCP, IP range", 10*time.Second); err != nil {
		t.Fatalf("dnsmasq did not start with the snippet: %v\n%s", err, p.Output())
	}
	checkClients(t, l, dir)
	if t.Failed() {
		t.Logf("snippet:\n%s", snippet)
	}
}

func TestKeaLoadsSnippet(t *testing.T) {
	t.Parallel()
	kea := needTool(t, "kea-dhcp4")
	needTool(t, "dhclient")
	l := lantest.New(t, lanSubnet)
	srv := l.AddHost("srv", lantest.HostOptions{Addr: serverAddr})

	snippet, err := Generate(Kea, Params{SettingURL: testURL, Filename: testFile})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The snippet goes right after "Dhcp4": {, as its header tells users.
	conf := `{
"Dhcp4": {
` + snippet + `
  "interfaces-config": { "interfaces": [ "eth0" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "lfc-interval": 0,
                      "name": "` + filepath.Join(dir, "leases4.csv") + `" },
  "valid-lifetime": 300,
  "subnet4": [ { "id": 1, "subnet": "` + lanSubnet + `",
                 "pools": [ { "pool": "10.77.0.100 - 10.77.0.150" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "INFO",
                 "output_options": [ { "output": "stdout" } ] } ]
}
}
`
	confPath := filepath.Join(dir, "kea-dhcp4.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -t: Kea's own syntax and semantics check.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, kea, "-t", confPath).CombinedOutput(); err != nil {
		t.Fatalf("kea-dhcp4 -t rejects the snippet: %v\n%s\nconfig:\n%s", err, out, conf)
	}
	// Kea writes its PID and lock files to /run/kea unless told otherwise.
	p := srv.Start("env", "KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir, kea, "-c", confPath)
	if err := p.WaitOutput("DHCP4_STARTED", 20*time.Second); err != nil {
		t.Fatalf("kea-dhcp4 did not start with the snippet: %v\n%s", err, p.Output())
	}
	checkClients(t, l, dir)
	if t.Failed() {
		t.Logf("config:\n%s", conf)
	}
}

func TestISCDhcpdLoadsSnippet(t *testing.T) {
	t.Parallel()
	dhcpd := needTool(t, "dhcpd")
	needTool(t, "dhclient")
	l := lantest.New(t, lanSubnet)
	srv := l.AddHost("srv", lantest.HostOptions{Addr: serverAddr})

	snippet, err := Generate(ISC, Params{SettingURL: testURL, Filename: testFile})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := snippet + `
authoritative;
default-lease-time 300;
max-lease-time 300;
subnet 10.77.0.0 netmask 255.255.255.0 {
  range 10.77.0.100 10.77.0.150;
}
`
	confPath := filepath.Join(dir, "dhcpd.conf")
	leases := filepath.Join(dir, "dhcpd.leases")
	for path, body := range map[string]string{confPath: conf, leases: ""} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, dhcpd, "-t", "-cf", confPath).CombinedOutput(); err != nil {
		t.Fatalf("dhcpd -t rejects the snippet: %v\n%s\nconfig:\n%s", err, out, conf)
	}
	p := srv.Start(dhcpd, "-4", "-f", "-d", "-cf", confPath, "-lf", leases, "-pf", filepath.Join(dir, "dhcpd.pid"), "eth0")
	if err := p.WaitOutput("Server starting service.", 20*time.Second); err != nil {
		t.Fatalf("dhcpd did not start with the snippet: %v\n%s", err, p.Output())
	}
	checkClients(t, l, dir)
	if t.Failed() {
		t.Logf("config:\n%s", conf)
	}
}
