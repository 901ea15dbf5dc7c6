package e2e

// Tests of the installer's field tools (simulate, doctor, resync) against
// real peers on simulated LANs: sipp as a phone for resync, dnsmasq as a
// rival DHCP server for doctor, and the snomprov binary for simulate.
//
// The tools run in-process code, but a goroutine's sockets follow the OS
// thread it happens to run on, so lantest's Host.Do cannot hold a tool that
// starts goroutines. Instead the test binary re-executes itself inside the
// namespace (TestFieldToolHelper, selected by an environment variable),
// runs the tool there and prints its report as JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/doctor"
	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/internal/servetest"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/resync"
	"github.com/snomprov/snomprov/simulate"
)

const (
	helperEnv    = "SNOMPROV_FIELDTOOL_HELPER"
	reportPrefix = "FIELDTOOL-REPORT: "
	errorPrefix  = "FIELDTOOL-ERROR: "
)

// toolCall is what the parent asks the helper process to run.
type toolCall struct {
	Tool     string           `json:"tool"` // simulate | doctor | resync
	Simulate simulate.Options `json:"simulate"`
	Doctor   doctor.Options   `json:"doctor"`
	Resync   resync.Options   `json:"resync"`
}

// TestFieldToolHelper is not a test: it is the body of the helper process.
func TestFieldToolHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for the field-tool tests; runs only when re-executed by them")
	}
	var c toolCall
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Printf("%sbad helper spec: %v\n", errorPrefix, err)
		os.Exit(0)
	}
	ctx := context.Background()
	var rep any
	var err error
	switch c.Tool {
	case "simulate":
		rep, err = simulate.Run(ctx, c.Simulate, os.Stdout)
	case "doctor":
		rep, err = doctor.Run(ctx, c.Doctor, os.Stdout)
	case "resync":
		rep, err = resync.Run(ctx, c.Resync, os.Stdout)
	default:
		err = fmt.Errorf("unknown tool %q", c.Tool)
	}
	b, jerr := json.Marshal(rep)
	if jerr != nil {
		fmt.Printf("%sencode report: %v\n", errorPrefix, jerr)
	}
	fmt.Printf("\n%s%s\n", reportPrefix, b)
	if err != nil {
		fmt.Printf("%s%s\n", errorPrefix, err)
	}
	os.Exit(0)
}

// runFieldTool runs one tool inside h's namespace and decodes its report
// into rep. It returns the tool's printed text and its error text ("" if none).
func runFieldTool(t *testing.T, h *lantest.Host, c toolCall, rep any) (text, toolErr string) {
	t.Helper()
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := h.Command(ctx, os.Args[0], "-test.run=^TestFieldToolHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s helper in %s: %v\n%s", c.Tool, h.Name, err, out)
	}
	var found bool
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, reportPrefix):
			found = true
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, reportPrefix)), rep); err != nil {
				t.Fatalf("decode %s report: %v\n%s", c.Tool, err, line)
			}
		case strings.HasPrefix(line, errorPrefix):
			toolErr = strings.TrimPrefix(line, errorPrefix)
		default:
			text += line + "\n"
		}
	}
	if !found {
		t.Fatalf("%s helper printed no report:\n%s", c.Tool, out)
	}
	t.Logf("%s in %s:\n%s(error: %q)", c.Tool, h.Name, text, toolErr)
	return text, toolErr
}

func repoRoot() string { return servetest.Root() }

// pnpStub is the LAN harness's reference PnP responder, kept in
// test/peers so the tests do not depend on where ../shared is.
func pnpStub(t *testing.T) string {
	t.Helper()
	stub := filepath.Join(repoRoot(), "test", "peers", "pnp_responder_stub.py")
	if _, err := os.Stat(stub); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PnP reference responder missing: %v", err)
		}
		t.Skipf("PnP reference responder not found: %v", err)
	}
	return stub
}

// waitUDPPort waits until something in h listens on udp port.
func waitUDPPort(t *testing.T, h *lantest.Host, port int) {
	t.Helper()
	if err := h.WaitListen("udp", port, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestResyncReachesSippPhone(t *testing.T) {
	needTool(t, "sipp")
	needTool(t, "ss")
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24"})
	ph := l.AddHost("phone", lantest.HostOptions{Addr: "10.77.0.20/24", MAC: "00:04:13:77:00:20"})
	scenario := filepath.Join(repoRoot(), "test", "sipp", "checksync_uas.xml")
	mac, _ := phone.ParseMAC(ph.MAC)

	for _, reboot := range []bool{false, true} {
		t.Run(fmt.Sprintf("reboot=%v", reboot), func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "sipp.log")
			uas := ph.Start("sipp", "-sf", scenario, "-t", "u1", "-i", "10.77.0.20", "-p", "5060", "-m", "1",
				"-nostdin", "-trace_logs", "-log_file", logFile, "-timeout", "30", "-timeout_error")
			waitUDPPort(t, ph, 5060)

			var rep resync.Report
			text, toolErr := runFieldTool(t, srv, toolCall{Tool: "resync", Resync: resync.Options{
				Targets: []resync.Target{{MAC: mac, Addr: netip.MustParseAddrPort("10.77.0.20:5060")}},
				Reboot:  reboot,
			}}, &rep)
			if toolErr != "" || len(rep.Results) != 1 {
				t.Fatalf("resync failed: %s", toolErr)
			}
			r := rep.Results[0]
			if !r.OK() || r.Status != 200 || r.From != "10.77.0.20:5060" {
				t.Errorf("result %+v", r)
			}
			if !strings.Contains(text, "000413770020") || !strings.Contains(text, "200 OK") {
				t.Errorf("report does not say who answered what:\n%s", text)
			}
			waitSippCall(t, uas)
			log, _ := os.ReadFile(logFile)
			if want := fmt.Sprintf("CHECKSYNC-OK reboot=%v", reboot); !bytes.Contains(log, []byte(want)) {
				t.Errorf("sipp log lacks %q:\n%s", want, log)
			}
		})
	}

	t.Run("no answer", func(t *testing.T) {
		// The phone host exists but nothing listens on 5070.
		var rep resync.Report
		text, toolErr := runFieldTool(t, srv, toolCall{Tool: "resync", Resync: resync.Options{
			Targets: []resync.Target{{MAC: mac, Addr: netip.MustParseAddrPort("10.77.0.20:5070")}},
			Timeout: 2 * time.Second,
		}}, &rep)
		if toolErr == "" || len(rep.Results) != 1 {
			t.Fatalf("want an error; got %q, %+v", toolErr, rep)
		}
		r := rep.Results[0]
		if r.Answered || r.OK() || r.Sent < 3 || !strings.Contains(r.Error, "no answer") {
			t.Errorf("result %+v (want no answer after timer-E retransmissions)", r)
		}
		if !strings.Contains(text, "no answer") {
			t.Errorf("text lacks \"no answer\":\n%s", text)
		}
	})
}

func TestDoctorNamesRivalDnsmasq(t *testing.T) {
	needTool(t, "dnsmasq")
	needTool(t, "ss")
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	cli := l.AddHost("cli", lantest.HostOptions{Addr: "10.77.0.5/24"})
	dir := t.TempDir()
	const rivalURL = "http://10.77.0.99/prov/"
	dnsmasq := srv.Start("dnsmasq", "-k", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
		"--dhcp-option-force=66,"+rivalURL,
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--user=root", "--log-dhcp", "--log-facility=-")
	waitUDPPort(t, srv, 67)

	// dnsmasq pings each address for 3 s before offering it, one DISCOVER
	// at a time: with a 3.5 s window the second OFFER (~6.3 s) is only
	// caught because doctor waits for a server's answer to both DISCOVERs.
	var short doctor.Report
	runFieldTool(t, cli, toolCall{Tool: "doctor", Doctor: doctor.Options{Interface: "eth0", Timeout: 3500 * time.Millisecond}}, &short)
	if len(short.DHCPServers) != 1 || !short.DHCPServers[0].AnswersSnom || !short.DHCPServers[0].AnswersPC {
		t.Errorf("short window: %+v", short.DHCPServers)
	}

	var rep doctor.Report
	text, toolErr := runFieldTool(t, cli, toolCall{Tool: "doctor", Doctor: doctor.Options{Interface: "eth0"}}, &rep)

	var rival *doctor.DHCPServer
	for i, s := range rep.DHCPServers {
		if s.ServerID == netip.MustParseAddr("10.77.0.1") {
			rival = &rep.DHCPServers[i]
		}
	}
	if rival == nil {
		t.Fatalf("doctor did not find dnsmasq at 10.77.0.1: %+v\ndnsmasq:\n%s", rep.DHCPServers, dnsmasq.Output())
	}
	if !rival.AnswersSnom || !rival.AnswersPC || rival.Snom.Opt66 != rivalURL || rival.Snom.URL != rivalURL || rival.Self {
		t.Errorf("rival = %+v", *rival)
	}
	if !rival.Offered.IsValid() || !netip.MustParsePrefix("10.77.0.0/24").Contains(rival.Offered) {
		t.Errorf("offered address %v", rival.Offered)
	}
	for _, want := range []string{"DHCP server 10.77.0.1", rivalURL, "sends phones to " + rivalURL, "Recommended mode: PnP only"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if rep.Mode != doctor.ModePnPOnly {
		t.Errorf("mode %q, want %q (multicast works, no rival PnP)", rep.Mode, doctor.ModePnPOnly)
	}
	// Nothing answers at the rival URL: that is a problem, so doctor fails.
	if !strings.Contains(toolErr, "problem") || !strings.Contains(text, "is not reachable") {
		t.Errorf("want the unreachable URL as a problem; error %q", toolErr)
	}
	if !rep.Multicast || len(rep.Addresses) != 1 {
		t.Errorf("interface check: %+v", rep)
	}
	// doctor must never take a lease: it sends no REQUEST.
	if leases, _ := os.ReadFile(filepath.Join(dir, "leases")); len(bytes.TrimSpace(leases)) != 0 {
		t.Errorf("dnsmasq handed out a lease:\n%s", leases)
	}
	if strings.Contains(dnsmasq.Output(), "DHCPREQUEST") {
		t.Errorf("doctor sent a REQUEST:\n%s", dnsmasq.Output())
	}

	// On the server itself doctor cannot see dnsmasq's OFFERs (a raw frame
	// is not looped back), but the port check names it.
	var local doctor.Report
	text, _ = runFieldTool(t, srv, toolCall{Tool: "doctor", Doctor: doctor.Options{Interface: "eth0", Timeout: 2 * time.Second}}, &local)
	var p67 *doctor.PortOwner
	for i, p := range local.Ports {
		if p.Proto == "udp" && p.Port == 67 {
			p67 = &local.Ports[i]
		}
	}
	if p67 == nil || p67.Free || p67.Process != "dnsmasq" || p67.Self {
		t.Errorf("port 67 owner = %+v", p67)
	}
	if !strings.Contains(text, "67/udp is used by dnsmasq") {
		t.Errorf("report does not name dnsmasq on 67/udp")
	}
}

// waitTCPPort waits until something in h listens on tcp port.
func waitTCPPort(t *testing.T, h *lantest.Host, port int) {
	t.Helper()
	if err := h.WaitListen("tcp", port, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestSimulateAgainstPeers runs simulate against reference peers: dnsmasq
// for DHCP, the harness's Python PnP responder and Python's http.server
// with a Wazo-style file layout.
func TestSimulateAgainstPeers(t *testing.T) {
	needTool(t, "dnsmasq")
	needTool(t, "python3")
	needTool(t, "ss")
	stub := pnpStub(t)
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	ph := l.AddHost("phone", lantest.HostOptions{Addr: "10.77.0.5/24", MAC: "00:04:13:77:00:05"})

	const base = "http://10.77.0.1:8080/"
	mac, _ := phone.ParseMAC("000413AA0001")
	www := t.TempDir()
	image := bytes.Repeat([]byte("snom firmware image "), 52429) // ~1 MB
	files := map[string]string{
		"snomD785.htm":                           `<?xml version="1.0" encoding="utf-8"?><setting-files><file url="` + base + `snomD785.xml"/></setting-files>`,
		"snomD785-" + mac.String() + ".htm":      `<settings><phone-settings e="2"><user_name idx="1" perm="R">401</user_name><user_pass idx="1" perm="R">x</user_pass></phone-settings></settings>`,
		"snomD785.xml":                           `<settings><phone-settings><firmware_status perm="R">` + base + `snomD785-firmware.xml</firmware_status><update_policy perm="R">auto_update</update_policy></phone-settings></settings>`,
		"snomD785-firmware.xml":                  `<firmware-settings><firmware perm="">` + base + `firmware/snomD785-10.1.200.1-SIP-r.bin?mac={mac}</firmware></firmware-settings>`,
		"firmware/snomD785-10.1.200.1-SIP-r.bin": string(image),
	}
	for name, body := range files {
		p := filepath.Join(www, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	srv.Start("dnsmasq", "-k", "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping",
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
		"--dhcp-option-force=66,http://10.77.0.1:8080/dhcp/",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--user=root", "--log-facility=-")
	pnpStub := srv.Start("python3", "-u", stub, "--iface-ip", "10.77.0.1", "--url", base)
	web := srv.Start("python3", "-m", "http.server", "8080", "--bind", "10.77.0.1", "--directory", www)
	waitUDPPort(t, srv, 67)
	waitUDPPort(t, srv, 5060)
	waitTCPPort(t, srv, 8080)

	t.Run("one phone, every step", func(t *testing.T) {
		var rep simulate.Report
		text, toolErr := runFieldTool(t, ph, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac}}, &rep)
		if toolErr != "" || len(rep.Phones) != 1 {
			t.Fatalf("simulate failed: %s\nstub:\n%s\nweb:\n%s", toolErr, pnpStub.Output(), web.Output())
		}
		p := rep.Phones[0]
		if !netip.MustParsePrefix("10.77.0.0/24").Contains(p.LeasedIP) || p.DHCPServer != netip.MustParseAddr("10.77.0.1") || p.SourceIP != netip.MustParseAddr("10.77.0.5") {
			t.Errorf("addresses: leased %v server %v source %v", p.LeasedIP, p.DHCPServer, p.SourceIP)
		}
		if p.DHCPURL != "http://10.77.0.1:8080/dhcp/" || p.PnPURL != base || p.SettingURL != base || p.URLSource != "pnp" {
			t.Errorf("URLs: dhcp %q pnp %q used %q (%s); PnP must win", p.DHCPURL, p.PnPURL, p.SettingURL, p.URLSource)
		}
		if p.ImageBytes != int64(len(image)) || !strings.Contains(p.Firmware, "mac="+mac.String()) {
			t.Errorf("image %q: %d bytes, want %d", p.Firmware, p.ImageBytes, len(image))
		}
		var fetched []string
		for _, s := range p.Steps {
			if s.Status != simulate.OK {
				t.Errorf("step %s %s: %s", s.Name, s.Status, s.Detail)
			}
			if s.Name != "url" && strings.HasPrefix(s.Target, "http") {
				fetched = append(fetched, strings.TrimPrefix(s.Target, base))
			}
		}
		// The seed's order: type file, MAC file, files listed in the
		// container, the firmware file named by firmware_status, the image.
		want := []string{"snomD785.htm", "snomD785-" + mac.String() + ".htm", "snomD785.xml", "snomD785-firmware.xml", "firmware/snomD785-10.1.200.1-SIP-r.bin?mac=" + mac.String()}
		if strings.Join(fetched, " ") != strings.Join(want, " ") {
			t.Errorf("fetch order %q, want %q", fetched, want)
		}
		// The web server saw the Snom User-Agent? http.server logs no UA; the
		// request lines at least must be there.
		if !strings.Contains(web.Output(), "GET /snomD785-"+mac.String()+".htm") {
			t.Errorf("web server log:\n%s", web.Output())
		}
		if !strings.Contains(text, "would be provisioned from "+base+" (pnp)") {
			t.Errorf("summary missing")
		}
	})

	t.Run("three phones at once", func(t *testing.T) {
		var rep simulate.Report
		_, toolErr := runFieldTool(t, ph, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac, Count: 3, NoFirmware: true}}, &rep)
		if toolErr != "" || len(rep.Phones) != 3 {
			t.Fatalf("simulate failed: %s", toolErr)
		}
		leased := map[netip.Addr]bool{}
		for i, p := range rep.Phones {
			if want := fmt.Sprintf("000413AA000%d", i+1); p.Phone.MAC.String() != want {
				t.Errorf("phone %d MAC %s, want %s", i, p.Phone.MAC, want)
			}
			leased[p.LeasedIP] = true
			if !p.OK() || p.URLSource != "pnp" {
				t.Errorf("phone %s: %+v", p.Phone.MAC, p.Steps)
			}
		}
		if len(leased) != 3 {
			t.Errorf("the phones did not get three different leases: %v", leased)
		}
	})

	t.Run("interface without an address: DHCP only", func(t *testing.T) {
		bare := l.AddHost("bare", lantest.HostOptions{MAC: "00:04:13:77:00:06"})
		var rep simulate.Report
		_, toolErr := runFieldTool(t, bare, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac}}, &rep)
		if !strings.Contains(toolErr, "would not be provisioned") || len(rep.Phones) != 1 {
			t.Fatalf("want a failure, got %q", toolErr)
		}
		p := rep.Phones[0]
		st, bad := p.FirstFailure()
		if !bad || st.Name != "address" || !strings.Contains(st.Detail, "has no IPv4 address") {
			t.Errorf("first failure %+v, want address", st)
		}
		if p.Steps[0].Name != "dhcp" || p.Steps[0].Status != simulate.OK || !p.LeasedIP.IsValid() {
			t.Errorf("DHCP should work without an address: %+v", p.Steps[0])
		}
		// simulate must not have configured the lease on the interface.
		out, _ := bare.Run(context.Background(), "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if strings.TrimSpace(out) != "" {
			t.Errorf("simulate changed the interface's addresses: %s", out)
		}
	})

	t.Run("no PnP: the DHCP URL serves nothing", func(t *testing.T) {
		var rep simulate.Report
		text, toolErr := runFieldTool(t, ph, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac, NoPnP: true}}, &rep)
		if !strings.Contains(toolErr, "would not be provisioned") || len(rep.Phones) != 1 {
			t.Fatalf("want a failure, got %q", toolErr)
		}
		p := rep.Phones[0]
		s, bad := p.FirstFailure()
		if !bad || s.Name != "settings" || !strings.Contains(s.Detail, "no setting file was served") || !strings.Contains(s.Detail, "404") {
			t.Errorf("first failure %+v, want settings / no setting file (404)", s)
		}
		if p.URLSource != "dhcp" || p.SettingURL != "http://10.77.0.1:8080/dhcp/" {
			t.Errorf("URL %q from %q", p.SettingURL, p.URLSource)
		}
		if !strings.Contains(text, "FAILED") {
			t.Errorf("text does not show the failure")
		}
	})
}

// snomprovLAN is a simulated LAN with snomprov in "srv" and a simulated
// phone host "phone" (static 10.77.0.5, outside the DHCP pool).
type snomprovLAN struct {
	srv   *lantest.Host
	phone *lantest.Host
	fw    string // firmware_dir
	state string // state_dir of the last serve
	image []byte
}

func newSnomprovLAN(t *testing.T) *snomprovLAN {
	t.Helper()
	needTool(t, "ss")
	binary(t)
	l := lantest.New(t, "10.77.0.0/24")
	s := &snomprovLAN{
		srv:   l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"}),
		phone: l.AddHost("phone", lantest.HostOptions{Addr: "10.77.0.5/24", MAC: "00:04:13:77:00:05"}),
		fw:    t.TempDir(),
		image: bytes.Repeat([]byte("snomD785 image "), 70000), // ~1 MB
	}
	if err := os.WriteFile(filepath.Join(s.fw, "snomD785-10.1.200.1-SIP-r.bin"), s.image, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// serve starts `snomprov serve` in srv with DHCP, PnP and HTTP and waits
// for msg=ready. httpExtra goes into [http]; the phone 000413AA0001 is
// configured; snomD785 has firmware, no other model does.
func (s *snomprovLAN) serve(t *testing.T, httpExtra string) *lantest.Process {
	t.Helper()
	p, _ := s.serveConfig(t, httpExtra)
	return p
}

// serveConfig is serve that also returns the config file's path. Unless
// httpExtra sets https_listen, HTTPS is off and snomD785 phones are an
// explicit cleartext exception (these tests are of plain HTTP).
func (s *snomprovLAN) serveConfig(t *testing.T, httpExtra string) (*lantest.Process, string) {
	t.Helper()
	s.state = t.TempDir()
	state := s.state
	if !strings.Contains(httpExtra, "https_listen") {
		httpExtra = "https_listen = \"\"\ncleartext_models = [\"snomD785\"]\n" + httpExtra
	}
	cfg := writeConfig(t, fmt.Sprintf(`[server]
interface = "eth0"
advertise = "10.77.0.1"
state_dir = %q
log_level = "debug"

[http]
listen = ":8080"
firmware_dir = %q
%s

[pnp]
answer = "all"

[dhcp]
enabled = true
pool = "10.77.0.100-10.77.0.150"
router = "10.77.0.1"

[models.snomD785]
firmware = "snomD785-10.1.200.1-SIP-r.bin"

[[phones]]
mac = "000413AA0001"
model = "snomD785"
[phones.settings]
user_name = { 1 = "401" }
user_pass = { 1 = "`+wireSecret+`" }
`, state, s.fw, httpExtra))
	p := s.srv.Start(binary(t), "serve", "-config", cfg)
	if err := p.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("snomprov serve did not get ready: %v\n%s", err, p.Output())
	}
	t.Cleanup(p.Stop)
	return p, cfg
}

// simulateEveryStepOK simulates one phone from s.phone against srv and
// fails the test for every step that is not ok.
func simulateEveryStepOK(t *testing.T, s *snomprovLAN, srv *lantest.Process, mac phone.MAC) (simulate.PhoneReport, string) {
	t.Helper()
	var rep simulate.Report
	text, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: mac}}, &rep)
	if toolErr != "" || len(rep.Phones) != 1 {
		t.Fatalf("simulate failed: %s\nsnomprov:\n%s", toolErr, srv.Output())
	}
	p := rep.Phones[0]
	for _, st := range p.Steps {
		if st.Status != simulate.OK {
			t.Errorf("step %s %s: %s", st.Name, st.Status, st.Detail)
		}
	}
	return p, text
}

// wireSecret is the configured phone's SIP password in these tests.
const wireSecret = "e2e-wire-secret-7731"

// TestBootstrapOnTheWire: with HTTPS on (the default), a simulated phone
// boots as a factory-fresh one does: DHCP and PnP give it the plain-HTTP
// URL, the bootstrap moves it to HTTPS, and it fetches its own file there
// trusting the CA snomprov made. A capture of the LAN during the whole
// boot holds the bootstrap but not the SIP password.
func TestBootstrapOnTheWire(t *testing.T) {
	needTool(t, "tcpdump")
	s := newSnomprovLAN(t)
	configured, _ := phone.ParseMAC("000413AA0001")
	srv := s.serve(t, `https_listen = ":8443"`)
	pcap := filepath.Join(t.TempDir(), "lan.pcap")
	capture := s.phone.Start("tcpdump", "-i", "eth0", "--immediate-mode", "-U", "-n", "-s", "0", "-w", pcap)
	if err := capture.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, capture.Output())
	}
	var rep simulate.Report
	ca := filepath.Join(s.state, "tls", "ca.crt")
	text, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: configured, CAFile: ca, NoFirmware: true}}, &rep)
	time.Sleep(time.Second) // the last packets reach the file
	capture.Stop()
	if toolErr != "" || len(rep.Phones) != 1 {
		t.Fatalf("simulate failed: %s\n%s\nsnomprov:\n%s", toolErr, text, srv.Output())
	}
	var boot, ownHTTPS bool
	for _, st := range rep.Phones[0].Steps {
		if st.Status == simulate.Failed {
			t.Errorf("step %s %s: %s", st.Name, st.Status, st.Detail)
		}
		boot = boot || st.Name == "bootstrap" && st.Target == "https://10.77.0.1:8443/"
		ownHTTPS = ownHTTPS || st.Name == "settings" && st.Status == simulate.OK && strings.HasPrefix(st.Target, "https://10.77.0.1:8443/") && strings.Contains(st.Target, "000413AA0001")
	}
	if !boot || !ownHTTPS {
		t.Errorf("bootstrap followed %v, own file over HTTPS %v:\n%s", boot, ownHTTPS, text)
	}
	wire, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(wire, []byte("https://10.77.0.1:8443/")) {
		summary, _ := exec.Command("tcpdump", "-n", "-r", pcap).CombinedOutput()
		t.Errorf("the capture (%d bytes) lacks the plain-HTTP bootstrap: it did not see the boot\n%s", len(wire), summary)
	}
	if bytes.Contains(wire, []byte(wireSecret)) {
		t.Error("the SIP password crossed the LAN in clear")
	}
}

func TestSimulateAgainstSnomprov(t *testing.T) {
	s := newSnomprovLAN(t)
	configured, _ := phone.ParseMAC("000413AA0001")
	stranger, _ := phone.ParseMAC("000413AA0099")

	t.Run("configured phone: every step ok", func(t *testing.T) {
		srv := s.serve(t, "")
		defer srv.Stop()
		p, text := simulateEveryStepOK(t, s, srv, configured)
		if !netip.MustParsePrefix("10.77.0.0/24").Contains(p.LeasedIP) || p.DHCPServer != netip.MustParseAddr("10.77.0.1") {
			t.Errorf("lease %v from %v", p.LeasedIP, p.DHCPServer)
		}
		if p.URLSource != "pnp" || !strings.HasPrefix(p.PnPURL, "http://10.77.0.1:8080") || !strings.HasPrefix(p.DHCPURL, "http://10.77.0.1:8080") {
			t.Errorf("URLs: pnp %q dhcp %q used %s", p.PnPURL, p.DHCPURL, p.URLSource)
		}
		if p.ImageBytes != int64(len(s.image)) {
			t.Errorf("image %s: %d bytes, want %d", p.Firmware, p.ImageBytes, len(s.image))
		}
		names := map[string]int{}
		for _, st := range p.Steps {
			names[st.Name]++
		}
		for _, n := range []string{"dhcp", "pnp", "url", "settings", "firmware-file", "firmware-image"} {
			if names[n] == 0 {
				t.Errorf("no %s step:\n%s", n, text)
			}
		}
	})

	t.Run("on the appliance itself", func(t *testing.T) {
		srv := s.serve(t, "")
		defer srv.Stop()
		// DHCP from this host never reaches a DHCP server on this host
		// (raw frames are not looped back): the report must say so.
		var rep simulate.Report
		_, toolErr := runFieldTool(t, s.srv, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: configured, Timeout: 2 * time.Second}}, &rep)
		if st, bad := rep.Phones[0].FirstFailure(); toolErr == "" || !bad || st.Name != "dhcp" || !strings.Contains(st.Detail, "--no-dhcp") {
			t.Errorf("want a dhcp failure that suggests --no-dhcp, got %+v (%s)", st, toolErr)
		}
		// Without DHCP the rest works: PnP over multicast loopback, HTTP to itself.
		rep = simulate.Report{}
		_, toolErr = runFieldTool(t, s.srv, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: configured, NoDHCP: true}}, &rep)
		if toolErr != "" || !rep.Phones[0].OK() || rep.Phones[0].URLSource != "pnp" || rep.Phones[0].ImageBytes != int64(len(s.image)) {
			t.Errorf("simulate on the appliance: %s %+v\nsnomprov:\n%s", toolErr, rep.Phones, srv.Output())
		}
	})

	t.Run("via the CLI", func(t *testing.T) {
		srv := s.serve(t, "")
		defer srv.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := s.phone.Run(ctx, binary(t), "simulate", "-interface", "eth0", "--mac", configured.String())
		t.Logf("snomprov simulate (%v):\n%s", err, out)
		if err != nil || !strings.Contains(out, "000413AA0001: would be provisioned from http://10.77.0.1:8080/ (pnp)") {
			t.Errorf("snomprov simulate: %v\n%s", err, out)
		}
		// A model without firmware configured is provisioned: the phone
		// keeps the firmware it runs (issue 11).
		out, err = s.phone.Run(ctx, binary(t), "simulate", "-interface", "eth0", "--mac", stranger.String(), "--model", "snomD715")
		t.Logf("snomprov simulate (%v):\n%s", err, out)
		if err != nil || !strings.Contains(out, "would be provisioned") {
			t.Errorf("snomprov simulate of a model without firmware must succeed: %v\n%s", err, out)
		}
	})

	t.Run("unknown_phones = deny, phone not configured: fails at settings", func(t *testing.T) {
		srv := s.serve(t, `unknown_phones = "deny"`)
		defer srv.Stop()
		var rep simulate.Report
		_, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: stranger}}, &rep)
		if !strings.Contains(toolErr, "would not be provisioned") || len(rep.Phones) != 1 {
			t.Fatalf("want a failure, got %q\nsnomprov:\n%s", toolErr, srv.Output())
		}
		st, bad := rep.Phones[0].FirstFailure()
		if !bad || st.Name != "settings" || !strings.Contains(st.Detail, "no setting file was served") || !strings.Contains(st.Detail, "[[phones]]") {
			t.Errorf("first failure %+v; want settings: no setting file was served ... [[phones]]", st)
		}
		for _, prev := range rep.Phones[0].Steps {
			if prev.Name == "dhcp" || prev.Name == "pnp" || prev.Name == "url" {
				if prev.Status != simulate.OK {
					t.Errorf("%s should have worked: %+v", prev.Name, prev)
				}
			}
		}
	})

	t.Run("model without firmware: provisioned, the firmware step skipped", func(t *testing.T) {
		srv := s.serve(t, "")
		defer srv.Stop()
		var rep simulate.Report
		_, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "simulate", Simulate: simulate.Options{Interface: "eth0", MAC: stranger, Model: "snomD715"}}, &rep)
		if toolErr != "" || len(rep.Phones) != 1 || !rep.Phones[0].OK() {
			t.Fatalf("want a provisioned phone, got %q %+v\nsnomprov:\n%s", toolErr, rep.Phones, srv.Output())
		}
		var fw *simulate.Step
		settingsOK := false
		for i, st := range rep.Phones[0].Steps {
			if st.Name == "settings" && st.Status == simulate.OK {
				settingsOK = true
			}
			if st.Name == "firmware-file" {
				fw = &rep.Phones[0].Steps[i]
			}
		}
		if fw == nil || fw.Status != simulate.Skipped || !strings.Contains(fw.Detail, "[models.snomD715] firmware") || !strings.Contains(fw.Target, "snomD715-firmware.htm") {
			t.Errorf("firmware step %+v; want skipped, naming [models.snomD715] firmware", fw)
		}
		if !settingsOK {
			t.Errorf("the generic settings should have been served: %+v", rep.Phones[0].Steps)
		}
	})

	t.Run("Basic auth on: every step passes", func(t *testing.T) {
		srv := s.serve(t, "username = \"prov\"\npassword = \"s3cret\"")
		defer srv.Stop()
		p, _ := simulateEveryStepOK(t, s, srv, configured)
		if !strings.HasPrefix(p.PnPURL, "http://prov:s3cret@10.77.0.1:8080") || !strings.HasPrefix(p.DHCPURL, "http://prov:s3cret@10.77.0.1:8080") {
			t.Errorf("the URLs handed out carry no credentials: pnp %q dhcp %q", p.PnPURL, p.DHCPURL)
		}
		if strings.Contains(srv.Output(), "s3cret") {
			t.Errorf("the password is in the log:\n%s", srv.Output())
		}
	})

}

func TestDoctorAgainstSnomprov(t *testing.T) {
	s := newSnomprovLAN(t)
	srv := s.serve(t, "")
	const self = "http://10.77.0.1:8080/"

	var rep doctor.Report
	text, toolErr := runFieldTool(t, s.phone, toolCall{Tool: "doctor", Doctor: doctor.Options{Interface: "eth0", SelfURL: self}}, &rep)
	if toolErr != "" {
		t.Errorf("doctor found problems on a healthy LAN: %s\nsnomprov:\n%s", toolErr, srv.Output())
	}
	if len(rep.DHCPServers) != 1 || !rep.DHCPServers[0].Self || !rep.DHCPServers[0].AnswersSnom || !strings.HasPrefix(rep.DHCPServers[0].Snom.URL, "http://10.77.0.1:8080") {
		t.Errorf("DHCP servers: %+v", rep.DHCPServers)
	}
	if len(rep.Responders) != 1 || !rep.Responders[0].Self || !strings.HasPrefix(rep.Responders[0].URL, "http://10.77.0.1:8080") {
		t.Errorf("PnP responders: %+v", rep.Responders)
	}
	for _, u := range rep.URLs {
		if !u.OK {
			t.Errorf("URL check %+v", u)
		}
	}
	if rep.Mode != doctor.ModeSnomprovDHCP || !strings.Contains(text, "Recommended mode: snomprov DHCP") {
		t.Errorf("mode %q", rep.Mode)
	}
}

// TestDoctorNamesRivalPnP: another PnP responder on the LAN (the harness's
// Python stub) sends phones elsewhere; doctor must name it as a problem.
func TestDoctorNamesRivalPnP(t *testing.T) {
	needTool(t, "python3")
	needTool(t, "ss")
	stub := pnpStub(t)
	l := lantest.New(t, "10.77.0.0/24")
	rival := l.AddHost("pbx", lantest.HostOptions{Addr: "10.77.0.9/24"})
	cli := l.AddHost("cli", lantest.HostOptions{Addr: "10.77.0.5/24"})
	const rivalURL = "http://10.77.0.9:9999/pbx/"
	rival.Start("python3", "-u", stub, "--iface-ip", "10.77.0.9", "--url", rivalURL)
	waitUDPPort(t, rival, 5060)

	var rep doctor.Report
	text, toolErr := runFieldTool(t, cli, toolCall{Tool: "doctor", Doctor: doctor.Options{Interface: "eth0", SelfURL: "http://10.77.0.1:8080/", Timeout: 2 * time.Second}}, &rep)
	if len(rep.Responders) != 1 || rep.Responders[0].Responder != netip.MustParseAddr("10.77.0.9") || rep.Responders[0].URL != rivalURL || rep.Responders[0].Self || !rep.Responders[0].Acked {
		t.Fatalf("responders: %+v", rep.Responders)
	}
	for _, want := range []string{"another PnP responder (10.77.0.9) sends phones to " + rivalURL, "this appliance did not answer the PnP probe"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(toolErr, "problem") {
		t.Errorf("want problems, error %q", toolErr)
	}
	if rep.Mode == doctor.ModePnPOnly {
		t.Errorf("PnP only must not be recommended with a rival responder")
	}
}

// TestResyncCLIFromInventory: a phone fetches its settings (curl with the
// Snom User-Agent), snomprov records its address, and `snomprov resync MAC`
// reaches it there (sipp as the phone).
func TestResyncCLIFromInventory(t *testing.T) {
	needTool(t, "sipp")
	needTool(t, "curl")
	s := newSnomprovLAN(t)
	srv, cfg := s.serveConfig(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mac, _ := phone.ParseMAC("000413AA0001")
	id := simulate.Identity{MAC: mac, Model: "snomD785", Firmware: "10.1.33.33"}
	if out, err := s.phone.Run(ctx, "curl", "-sf", "-o", "/dev/null", "-A", id.UserAgent(), "http://10.77.0.1:8080/snomD785-"+mac.String()+".htm"); err != nil {
		t.Fatalf("curl: %v %s\n%s", err, out, srv.Output())
	}
	// The inventory is flushed every 2 s.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := s.srv.Run(ctx, binary(t), "phones", "--json", "-config", cfg)
		if strings.Contains(out, mac.String()) && strings.Contains(out, "10.77.0.5") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inventory never recorded %s at 10.77.0.5:\n%s", mac, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logFile := filepath.Join(t.TempDir(), "sipp.log")
	uas := s.phone.Start("sipp", "-sf", filepath.Join(repoRoot(), "test", "sipp", "checksync_uas.xml"), "-t", "u1",
		"-i", "10.77.0.5", "-p", "5060", "-m", "1", "-nostdin", "-trace_logs", "-log_file", logFile, "-timeout", "30", "-timeout_error")
	waitUDPPort(t, s.phone, 5060)
	out, err := s.srv.Run(ctx, binary(t), "resync", "-config", cfg, "--reboot", mac.String())
	t.Logf("snomprov resync (%v):\n%s", err, out)
	if err != nil || !strings.Contains(out, "000413AA0001 at 10.77.0.5:5060: 200 OK") {
		t.Errorf("snomprov resync: %v\n%s", err, out)
	}
	waitSippCall(t, uas)
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("CHECKSYNC-OK reboot=true")) {
		t.Errorf("sipp log:\n%s", log)
	}
}

// waitSippCall waits for a sipp UAS started with -m 1 to finish its call
// and fails the test if the scenario did not pass.
func waitSippCall(t *testing.T, uas *lantest.Process) {
	t.Helper()
	select {
	case <-uas.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("sipp did not finish its one call")
	}
	if uas.Err() != nil {
		t.Fatalf("sipp scenario failed (%v):\n%s", uas.Err(), uas.Output())
	}
}
