package e2e

// SIP multicast PnP end to end: the real binary in the server namespace of a
// simulated LAN (internal/lantest), phones in other namespaces sending the
// documented SUBSCRIBE traces as raw multicast, and sipp as a phone.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/internal/pnptraces"
)

const pnpConfigTOML = `
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
answer = "%[2]s"
`

const pnpServer = "10.77.0.1"

// pnpWantURL is the setting URL the config above hands out: the server's
// address on the LAN and the HTTP port.
const pnpWantURL = "http://10.77.0.1:8080/"

type pnpEnv struct {
	lan    *lantest.LAN
	srv    *lantest.Host
	phones []*lantest.Host
	cfg    string
	serve  *lantest.Process
}

// startPnPEnv makes a LAN with the server and n phones, and runs
// `snomprov serve` in the server namespace until it logs msg=ready.
func startPnPEnv(t *testing.T, n int, answer string) *pnpEnv {
	t.Helper()
	bin := binary(t)
	e := &pnpEnv{lan: lantest.New(t, "10.77.0.0/24")}
	e.srv = e.lan.AddHost("srv", lantest.HostOptions{Addr: pnpServer + "/24", MAC: "02:77:ff:00:00:01"})
	for i := 1; i <= n; i++ {
		h := e.lan.AddHost(fmt.Sprintf("ph%d", i), lantest.HostOptions{
			Addr: fmt.Sprintf("10.77.0.%d/24", 10+i), MAC: fmt.Sprintf("00:04:13:77:00:%02x", i)})
		e.phones = append(e.phones, h)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg = writeConfig(t, fmt.Sprintf(pnpConfigTOML, dir, answer))
	for _, h := range e.phones {
		pnpWaitLink(t, h)
	}
	e.serve = e.srv.Start(bin, "serve", "-config", e.cfg)
	if err := e.serve.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("snomprov serve: %v\n%s", err, e.serve.Output())
	}
	return e
}

// pnpWaitLink waits until the phone reaches the server through the bridge:
// a fresh veth drops what is sent before the kernel activates it.
func pnpWaitLink(t *testing.T, h *lantest.Host) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.Run(ctx, "ping", "-c1", "-W1", "-q", pnpServer)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot reach %s: %v", h.Name, pnpServer, err)
		}
	}
}

// pnpPhone is a raw UDP socket on the phone's port 5060, inside its namespace.
type pnpPhone struct {
	ip   string
	conn *net.UDPConn
}

func newPnPPhone(t *testing.T, h *lantest.Host) *pnpPhone {
	t.Helper()
	p := &pnpPhone{ip: h.IP.String()}
	err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: h.IP.AsSlice(), Port: 5060})
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			c.Close()
			return err
		}
		pc := ipv4.NewPacketConn(c)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			c.Close()
			return err
		}
		_ = pc.SetMulticastTTL(1)
		p.conn = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	return p
}

type pnpMsg struct {
	from  netip.AddrPort
	start string
	hdr   map[string]string // first value, lower-case names
	body  string
}

func (p *pnpPhone) recv(timeout time.Duration) *pnpMsg {
	buf := make([]byte, 65535)
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	head, body, _ := strings.Cut(string(buf[:n]), "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	m := &pnpMsg{from: from, start: lines[0], hdr: map[string]string{}, body: body}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		if _, dup := m.hdr[k]; !dup {
			m.hdr[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func (p *pnpPhone) send(t *testing.T, b []byte, to string) {
	t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, netip.MustParseAddrPort(to)); err != nil {
		t.Fatal(err)
	}
}

// answer200 answers a NOTIFY at its top Via, as a phone does.
func (p *pnpPhone) answer200(t *testing.T, n *pnpMsg) {
	t.Helper()
	via := n.hdr["via"]
	hostport := strings.Fields(strings.SplitN(via, ";", 2)[0])[1]
	p.send(t, []byte("SIP/2.0 200 OK\r\nVia: "+via+"\r\nFrom: "+n.hdr["from"]+"\r\nTo: "+n.hdr["to"]+
		"\r\nCall-ID: "+n.hdr["call-id"]+"\r\nCSeq: "+n.hdr["cseq"]+"\r\nContent-Length: 0\r\n\r\n"), hostport)
}

// The documented traces the binary is sent: snompnpd's (no Via branch),
// D120, M700 (From sip:512@ip) and a Yealink, which answer = "snom" ignores.
var pnpTraces = []pnptraces.Trace{pnptraces.Documented[1], pnptraces.Documented[2], pnptraces.Documented[3], pnptraces.Documented[4]}

// The real binary with the default policy for a config file (answer =
// "snom"): every Snom trace from two phones gets the 200 and the NOTIFY with
// the server's LAN address, the Yealink gets silence, and `snomprov phones`
// shows the PnP step.
func TestPnPBinaryAnswersDocumentedTraces(t *testing.T) {
	e := startPnPEnv(t, 2, "snom")
	phones := []*pnpPhone{newPnPPhone(t, e.phones[0]), newPnPPhone(t, e.phones[1])}
	for i, tr := range pnpTraces {
		p := phones[i%2]
		raw := tr.Build(p.ip)
		p.send(t, raw, "224.0.1.75:5060")
		if !tr.Snom {
			if m := p.recv(1500 * time.Millisecond); m != nil {
				t.Errorf("%s: answered %q under answer=snom", tr.Name, m.start)
			}
			continue
		}
		ok := p.recv(3 * time.Second)
		if ok == nil || ok.start != "SIP/2.0 200 OK" {
			t.Fatalf("%s: no 200 OK (got %+v)\nserver log:\n%s", tr.Name, ok, e.serve.Output())
		}
		if ok.from.String() != pnpServer+":5060" || !strings.Contains(ok.hdr["to"], ";tag=") || ok.hdr["expires"] != "0" {
			t.Errorf("%s: 200 OK from %s, To %q, Expires %q", tr.Name, ok.from, ok.hdr["to"], ok.hdr["expires"])
		}
		n := p.recv(3 * time.Second)
		if n == nil || !strings.HasPrefix(n.start, "NOTIFY ") {
			t.Fatalf("%s: no NOTIFY (got %+v)", tr.Name, n)
		}
		if !strings.HasPrefix(n.hdr["via"], "SIP/2.0/UDP "+pnpServer+":5060;") || !strings.Contains(n.hdr["via"], "branch=z9hG4bK") {
			t.Errorf("%s: NOTIFY Via %q is not ours", tr.Name, n.hdr["via"])
		}
		if n.hdr["event"] != tr.Header("Event") || n.hdr["subscription-state"] != "terminated;reason=timeout" || n.hdr["content-type"] != "application/url" {
			t.Errorf("%s: NOTIFY Event %q, Subscription-State %q, Content-Type %q", tr.Name, n.hdr["event"], n.hdr["subscription-state"], n.hdr["content-type"])
		}
		if n.body != pnpWantURL {
			t.Errorf("%s: NOTIFY body %q, want %q", tr.Name, n.body, pnpWantURL)
		}
		p.answer200(t, n)
		if m := p.recv(time.Second); m != nil {
			t.Errorf("%s: after the 200, still got %q", tr.Name, m.start)
		}
	}

	// The inventory is flushed every 2 s; `snomprov phones` reads it.
	type row struct {
		MAC   string `json:"mac"`
		Model string `json:"model"`
		IP    string `json:"ip"`
		State string `json:"state"`
		Steps map[string]struct {
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"steps"`
	}
	var rows []row
	deadline := time.Now().Add(8 * time.Second)
	for {
		out, err := exec.Command(binary(t), "phones", "--json", "-config", e.cfg).Output()
		if err != nil {
			t.Fatalf("snomprov phones: %v", err)
		}
		rows = nil
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("phones --json: %v\n%s", err, out)
		}
		acked := 0
		for _, r := range rows {
			if r.Steps["pnp"].Detail == "NOTIFY acknowledged" {
				acked++
			}
		}
		if acked == 3 && len(rows) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	byMAC := map[string]row{}
	for _, r := range rows {
		byMAC[r.MAC] = r
	}
	for i, tr := range pnpTraces {
		r, ok := byMAC[tr.MAC]
		if !ok {
			t.Errorf("%s: %s not in `snomprov phones`: %+v", tr.Name, tr.MAC, rows)
			continue
		}
		step := r.Steps["pnp"]
		wantIP := phones[i%2].ip
		switch {
		case r.IP != wantIP || r.Model != tr.Model:
			t.Errorf("%s: phones shows ip %q model %q, want %q %q", tr.Name, r.IP, r.Model, wantIP, tr.Model)
		case tr.Snom && (!step.OK || step.Detail != "NOTIFY acknowledged" || r.State != "pnp-answered"):
			t.Errorf("%s: pnp step %+v, state %q", tr.Name, step, r.State)
		case !tr.Snom && (step.OK || !strings.Contains(step.Detail, "not answered")):
			t.Errorf("%s: pnp step %+v for an unanswered phone", tr.Name, step)
		}
	}
}

// sipp as the phone (test/sipp/pnp_subscribe.xml): SUBSCRIBE to the group,
// 200, NOTIFY, 200, for 50 distinct phones, while a third namespace floods
// the group with garbage and other SIP.
func TestPnPSippPhonesDuringFlood(t *testing.T) {
	needTool(t, "sipp")
	e := startPnPEnv(t, 2, "snom")
	dir := t.TempDir()
	var macs strings.Builder
	macs.WriteString("SEQUENTIAL\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&macs, "000413B%05X\n", i)
	}
	inf := filepath.Join(dir, "macs.csv")
	if err := os.WriteFile(inf, []byte(macs.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	flooder := newPnPPhone(t, e.phones[1])
	var flooded atomic.Int64
	stop := make(chan struct{})
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		noise := [][]byte{
			[]byte("OPTIONS sip:224.0.1.75 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bKo\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
			[]byte("SUBSCRIBE sip:MAC%3a000413000001@224.0.1.75 SIP/2.0\r\nVia: SIP/2.0/UDP 10.77.0.12:5060;branch=z9hG4bKp\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: p\r\nCSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n"),
			[]byte("NOTIFY sip:224.0.1.75 SIP/2.0\r\nEvent: check-sync\r\n\r\n"),
			bytes.Repeat([]byte{0xA5}, 900),
			[]byte("SIP/2.0 \xff\x00"),
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := flooder.conn.WriteToUDPAddrPort(noise[i%len(noise)], netip.MustParseAddrPort("224.0.1.75:5060")); err == nil {
				flooded.Add(1)
			}
			if i%200 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for flooded.Load() < 2000 {
		time.Sleep(5 * time.Millisecond)
	}

	scenario := filepath.Join(repoRoot(), "test", "sipp", "pnp_subscribe.xml")
	logFile := filepath.Join(dir, "sipp.log")
	ph := e.phones[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := ph.Run(ctx, "sipp", "-sf", scenario, "-inf", inf, "-t", "u1", "-i", ph.IP.String(), "-p", "5060",
		"-nostdin", "-nr", "-r", "25", "-m", "50", "-timeout", "40", "-timeout_error",
		"-trace_logs", "-log_file", logFile, "224.0.1.75:5060")
	close(stop)
	<-floodDone
	log, _ := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("sipp failed (%v):\n%s\nsipp log:\n%s\nserver log:\n%s", err, out, log, e.serve.Output())
	}
	if got := bytes.Count(log, []byte("PNP-OK ")); got != 50 {
		t.Errorf("%d PNP-OK lines, want 50:\n%s", got, log)
	}
	if want := "url=" + pnpWantURL + " "; !bytes.Contains(log, []byte(want)) {
		t.Errorf("sipp log lacks %q", want)
	}
	if !bytes.Contains(log, []byte("notify-from=SIP/2.0/UDP "+pnpServer+":5060")) {
		t.Errorf("NOTIFY did not come from %s:5060:\n%s", pnpServer, log)
	}
	t.Logf("%d noise datagrams were sent to the group during the sipp run", flooded.Load())
}

// SIGHUP switches the policy and the URL: a phone ignored under answer =
// "none" is answered after the reload, with the new URL, and a NOTIFY that
// was being retransmitted across the reload still completes.
func TestPnPReloadOnSIGHUP(t *testing.T) {
	e := startPnPEnv(t, 1, "all")
	p := newPnPPhone(t, e.phones[0])
	tr := pnpTraces[1] // D120
	build := func(callID string) []byte {
		s := string(tr.Build(p.ip))
		return []byte(strings.Replace(s, "Call-ID: 1913994428@", "Call-ID: "+callID+"@", 1))
	}
	// In flight across the reload: take the 200 and the NOTIFY, do not answer yet.
	p.send(t, build("inflight"), "224.0.1.75:5060")
	if m := p.recv(3 * time.Second); m == nil || m.start != "SIP/2.0 200 OK" {
		t.Fatalf("no 200 before the reload: %+v", m)
	}
	if m := p.recv(3 * time.Second); m == nil || !strings.HasPrefix(m.start, "NOTIFY ") || m.body != pnpWantURL {
		t.Fatalf("no NOTIFY before the reload: %+v", m)
	}

	body, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	newCfg := strings.Replace(string(body), `answer = "all"`, `answer = "none"`, 1)
	newCfg = strings.Replace(newCfg, "[http]\n", "[http]\nurl = \"http://10.77.0.1:8080/prov/{mac}.xml\"\n", 1)
	if err := os.WriteFile(e.cfg, []byte(newCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.serve.Signal(syscall.SIGHUP)
	if err := e.serve.WaitOutput("configuration reloaded", 10*time.Second); err != nil {
		t.Fatalf("reload: %v\n%s", err, e.serve.Output())
	}
	// The NOTIFY sent before the reload is still retransmitted after it (what
	// arrived before the reload finished is drained first) and still carries
	// the old URL; answering it completes that exchange.
	for p.recv(20*time.Millisecond) != nil {
	}
	var late *pnpMsg
	for late == nil {
		m := p.recv(5 * time.Second)
		if m == nil {
			t.Fatal("the in-flight NOTIFY was not retransmitted after the reload")
		}
		if strings.HasPrefix(m.start, "NOTIFY ") && m.hdr["call-id"] == "inflight@"+p.ip {
			late = m
		}
	}
	if late.body != pnpWantURL {
		t.Errorf("in-flight NOTIFY body changed to %q", late.body)
	}
	p.answer200(t, late)

	p.send(t, build("after-none"), "224.0.1.75:5060")
	if m := p.recv(1500 * time.Millisecond); m != nil {
		t.Fatalf("answered %q under answer = \"none\"", m.start)
	}

	newCfg = strings.Replace(newCfg, `answer = "none"`, `answer = "snom"`, 1)
	if err := os.WriteFile(e.cfg, []byte(newCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	e.serve.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(e.serve.Output(), "configuration reloaded") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("second reload not logged:\n%s", e.serve.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.send(t, build("after-snom"), "224.0.1.75:5060")
	var n *pnpMsg
	for n == nil {
		m := p.recv(3 * time.Second)
		if m == nil {
			t.Fatal("no NOTIFY after switching to answer = \"snom\"")
		}
		if strings.HasPrefix(m.start, "NOTIFY ") && m.hdr["call-id"] == "after-snom@"+p.ip {
			n = m
		}
	}
	if n.body != "http://10.77.0.1:8080/prov/{mac}.xml" {
		t.Errorf("URL after reload = %q", n.body)
	}
	p.answer200(t, n)
}
