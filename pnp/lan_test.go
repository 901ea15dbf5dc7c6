package pnp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// These tests run the responder in the "srv" namespace of a simulated LAN
// (internal/lantest) and fake phones in other namespaces that send the
// documented SUBSCRIBE traces to 224.0.1.75 as raw UDP multicast.

const testURL = "http://%s:8080/snom.htm?mac={mac}"

func testURLFunc(local netip.Addr) string { return fmt.Sprintf(testURL, local) }

// recorder is an inventory.Recorder the tests can wait on.
type recorder struct {
	mu   sync.Mutex
	obs  []inventory.Observation
	kick chan struct{}
}

func newRecorder() *recorder { return &recorder{kick: make(chan struct{}, 1)} }

func (r *recorder) Record(o inventory.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *recorder) find(mac phone.MAC, kind inventory.Kind) (inventory.Observation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.obs {
		if o.MAC == mac && o.Event.Kind == kind {
			return o, true
		}
	}
	return inventory.Observation{}, false
}

func (r *recorder) count(kind inventory.Kind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.obs {
		if o.Event.Kind == kind {
			n++
		}
	}
	return n
}

func (r *recorder) wait(t testing.TB, mac phone.MAC, kind inventory.Kind, timeout time.Duration) inventory.Observation {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if o, ok := r.find(mac, kind); ok {
			return o
		}
		select {
		case <-r.kick:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no %s event for %s within %s; recorded: %+v", kind, mac, timeout, r.obs)
		}
	}
}

// testLogger writes Info and above to the test log, until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

func (w *testWriter) stop() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

type lan struct {
	l   *lantest.LAN
	srv *lantest.Host
	n   int
}

func newLAN(t testing.TB) *lan {
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	return &lan{l: l, srv: srv}
}

// start runs a responder in srv until the test ends.
func (n *lan) start(t testing.TB, o Options) (*Server, *recorder) {
	t.Helper()
	if o.Interfaces == nil {
		o.Interfaces = []string{"eth0"}
	}
	if o.URL == nil {
		o.URL = testURLFunc
	}
	rec := newRecorder()
	s, err := New(o, testLogger(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.srv.Do(func() error { return s.Bind(context.Background()) }); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of cancel")
		}
	})
	return s, rec
}

// fakePhone is a UDP socket on port 5060 in its own namespace.
type fakePhone struct {
	t    testing.TB
	host *lantest.Host
	ip   netip.Addr
	conn *net.UDPConn
}

func (n *lan) phone(t testing.TB) *fakePhone {
	t.Helper()
	n.n++
	ip := netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + n.n)})
	h := n.l.AddHost(fmt.Sprintf("ph%d", n.n), lantest.HostOptions{Addr: ip.String() + "/24", MAC: fmt.Sprintf("00:04:13:77:00:%02x", n.n)})
	p := &fakePhone{t: t, host: h, ip: ip}
	err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip.AsSlice(), Port: 5060})
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		pc := ipv4.NewPacketConn(c)
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return err
		}
		if err := pc.SetMulticastTTL(1); err != nil {
			return err
		}
		p.conn = c
		return nil
	})
	if err != nil {
		t.Fatalf("phone socket: %v", err)
	}
	t.Cleanup(func() { p.conn.Close() })
	waitLink(t, h, srvAddr())
	return p
}

// waitLink waits until h reaches addr through the bridge. A fresh veth drops
// what is sent before the kernel's link watcher has activated it (up to a
// second later, more on a loaded machine), which would make tests flaky.
func waitLink(t testing.TB, h *lantest.Host, addr netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.Run(ctx, "ping", "-c1", "-W1", "-q", addr.String())
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot reach %s on the simulated LAN: %v", h.Name, addr, err)
		}
	}
}

var groupAddr = &net.UDPAddr{IP: net.IPv4(224, 0, 1, 75), Port: 5060}

func (p *fakePhone) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteTo(b, groupAddr); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *fakePhone) sendTo(b []byte, to netip.AddrPort) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatalf("send to %s: %v", to, err)
	}
}

// sipMsg is a received SIP message, parsed just enough for assertions.
type sipMsg struct {
	from    netip.AddrPort
	start   string
	headers map[string][]string // lower-case names
	body    string
	raw     []byte
}

func (m *sipMsg) get(name string) string {
	v := m.headers[strings.ToLower(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func parseMsg(b []byte, from netip.AddrPort) *sipMsg {
	m := &sipMsg{from: from, headers: map[string][]string{}, raw: append([]byte(nil), b...)}
	head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	m.body = string(body)
	lines := strings.Split(string(head), "\r\n")
	m.start = lines[0]
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		if full, ok := compactNames[k]; ok {
			k = full
		}
		m.headers[k] = append(m.headers[k], strings.TrimSpace(v))
	}
	return m
}

var compactNames = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "o": "event", "l": "content-length", "c": "content-type"}

// recv returns the next datagram, or nil after timeout.
func (p *fakePhone) recv(timeout time.Duration) *sipMsg {
	buf := make([]byte, 65535)
	p.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil
	}
	return parseMsg(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
}

func (p *fakePhone) mustRecv(what string) *sipMsg {
	p.t.Helper()
	m := p.recv(3 * time.Second)
	if m == nil {
		p.t.Fatalf("%s: nothing received within 3s", what)
	}
	return m
}

// expectSilence fails if anything arrives within d.
func (p *fakePhone) expectSilence(d time.Duration, why string) {
	p.t.Helper()
	if m := p.recv(d); m != nil {
		p.t.Fatalf("%s: expected no answer, got %q from %s", why, m.start, m.from)
	}
}

// answer200 answers a NOTIFY with 200 OK at its top Via, as a phone does.
func (p *fakePhone) answer200(n *sipMsg) {
	p.t.Helper()
	via := n.get("Via")
	hostport := strings.Fields(strings.SplitN(via, ";", 2)[0])[1]
	to, err := netip.ParseAddrPort(hostport)
	if err != nil {
		p.t.Fatalf("NOTIFY Via %q has no ip:port: %v", via, err)
	}
	res := "SIP/2.0 200 OK\r\n" +
		"Via: " + via + "\r\n" +
		"From: " + n.get("From") + "\r\n" +
		"To: " + n.get("To") + "\r\n" +
		"Call-ID: " + n.get("Call-ID") + "\r\n" +
		"CSeq: " + n.get("CSeq") + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	p.sendTo([]byte(res), to)
}

// headerTag is the tag= parameter of a From or To value.
func headerTag(v string) string {
	if i := strings.LastIndexByte(v, '>'); i >= 0 {
		v = v[i+1:]
	}
	for _, p := range strings.Split(v, ";")[1:] {
		if k, val, _ := strings.Cut(p, "="); strings.EqualFold(strings.TrimSpace(k), "tag") {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// checkOK asserts the 200 OK to a SUBSCRIBE.
func checkOK(t *testing.T, sub []byte, ok *sipMsg, srv netip.Addr) {
	t.Helper()
	req := parseMsg(sub, netip.AddrPort{})
	if ok.start != "SIP/2.0 200 OK" {
		t.Fatalf("answer to SUBSCRIBE = %q, want 200 OK", ok.start)
	}
	if ok.from != netip.AddrPortFrom(srv, 5060) {
		t.Errorf("200 OK came from %s, want %s:5060 (unicast)", ok.from, srv)
	}
	if headerTag(ok.get("To")) == "" {
		t.Errorf("200 OK To has no tag: %q", ok.get("To"))
	}
	if ok.get("Expires") != "0" {
		t.Errorf("200 OK Expires = %q, want 0", ok.get("Expires"))
	}
	for _, h := range []string{"Call-ID", "CSeq", "From"} {
		if ok.get(h) != req.get(h) {
			t.Errorf("200 OK %s = %q, want %q", h, ok.get(h), req.get(h))
		}
	}
	if !strings.HasPrefix(ok.get("Via"), strings.Split(req.get("Via"), ";")[0]) {
		t.Errorf("200 OK Via = %q, want the SUBSCRIBE's %q", ok.get("Via"), req.get("Via"))
	}
}

// checkNotify asserts the NOTIFY that follows the 200 OK.
func checkNotify(t *testing.T, sub []byte, ok, n *sipMsg, srv netip.Addr, viaPort int) {
	t.Helper()
	req := parseMsg(sub, netip.AddrPort{})
	if !strings.HasPrefix(n.start, "NOTIFY sip:") || !strings.HasSuffix(n.start, " SIP/2.0") {
		t.Fatalf("second message = %q, want a NOTIFY", n.start)
	}
	if n.from.Addr() != srv || int(n.from.Port()) != viaPort {
		t.Errorf("NOTIFY came from %s, want %s:%d", n.from, srv, viaPort)
	}
	via := n.get("Via")
	wantVia := fmt.Sprintf("SIP/2.0/UDP %s:%d;", srv, viaPort)
	if !strings.HasPrefix(via, wantVia) || !strings.Contains(via, "branch=z9hG4bK") {
		t.Errorf("NOTIFY Via = %q, want our own %q… with a z9hG4bK branch", via, wantVia)
	}
	if len(n.headers["via"]) != 1 {
		t.Errorf("NOTIFY has %d Vias, want only ours", len(n.headers["via"]))
	}
	if got, want := n.get("Event"), req.get("Event"); got != want {
		t.Errorf("NOTIFY Event = %q, want it echoed: %q", got, want)
	}
	if got := n.get("Subscription-State"); got != "terminated;reason=timeout" {
		t.Errorf("Subscription-State = %q", got)
	}
	if got := n.get("Content-Type"); got != "application/url" {
		t.Errorf("Content-Type = %q", got)
	}
	if got, want := n.body, fmt.Sprintf(testURL, srv); got != want {
		t.Errorf("NOTIFY body = %q, want %q", got, want)
	}
	if got := n.get("Content-Length"); got != fmt.Sprint(len(n.body)) {
		t.Errorf("Content-Length = %q for a %d-byte body", got, len(n.body))
	}
	if n.get("Call-ID") != req.get("Call-ID") {
		t.Errorf("NOTIFY Call-ID = %q, want %q", n.get("Call-ID"), req.get("Call-ID"))
	}
	if headerTag(n.get("From")) != headerTag(ok.get("To")) {
		t.Errorf("NOTIFY From tag %q != 200 OK To tag %q", n.get("From"), ok.get("To"))
	}
	if n.get("To") != req.get("From") {
		t.Errorf("NOTIFY To = %q, want the SUBSCRIBE's From %q", n.get("To"), req.get("From"))
	}
	if !strings.HasSuffix(n.get("CSeq"), " NOTIFY") {
		t.Errorf("CSeq = %q", n.get("CSeq"))
	}
}

func srvAddr() netip.Addr { return netip.MustParseAddr("10.77.0.1") }

// Every documented trace, from two phones, gets the 200, the NOTIFY with the
// server's address on the LAN, and the phone's 200 is taken as the ACK.
func TestLANAnswersEveryTrace(t *testing.T) {
	n := newLAN(t)
	_, rec := n.start(t, Options{Answer: AnswerAll})
	phones := []*fakePhone{n.phone(t), n.phone(t)}
	for i, tr := range traces {
		t.Run(tr.Name, func(t *testing.T) {
			p := phones[i%len(phones)]
			p.t = t
			sub := tr.Build(p.ip.String())
			p.send(sub)
			ok := p.mustRecv("200 OK")
			checkOK(t, sub, ok, srvAddr())
			nt := p.mustRecv("NOTIFY")
			checkNotify(t, sub, ok, nt, srvAddr(), 5060)
			p.answer200(nt)
			mac := mustMAC(tr.MAC)
			acked := rec.wait(t, mac, "NOTIFY-ACKED", 3*time.Second)
			if !acked.Event.OK || acked.IP != p.ip {
				t.Errorf("ACKED observation = %+v", acked)
			}
			got, _ := rec.find(mac, "SUBSCRIBE")
			if got.Model != tr.Model || got.Firmware != tr.Firmware || got.IP != p.ip || got.Event.Step != inventory.StepPnP ||
				got.Event.Detail != "NOTIFY sent, url="+fmt.Sprintf(testURL, srvAddr()) {
				t.Errorf("SUBSCRIBE observation = %+v", got)
			}
			// Acknowledged: no retransmission of the NOTIFY follows.
			p.expectSilence(800*time.Millisecond, "after the NOTIFY was acknowledged")
		})
	}
}

// The NOTIFY is retransmitted (same branch) until the phone's 200 arrives.
func TestLANNotifyRetransmittedUntilAcked(t *testing.T) {
	n := newLAN(t)
	_, rec := n.start(t, Options{Answer: AnswerAll, NotifyTimeout: 5 * time.Second})
	p := n.phone(t)
	tr := traces[2]
	sub := tr.Build(p.ip.String())
	p.send(sub)
	p.mustRecv("200 OK")
	first := p.mustRecv("NOTIFY")
	var last *sipMsg
	for i := 0; i < 2; i++ { // ignore the first two copies
		last = p.mustRecv("NOTIFY retransmission")
		if !strings.HasPrefix(last.start, "NOTIFY ") || last.get("Via") != first.get("Via") || last.get("CSeq") != first.get("CSeq") {
			t.Fatalf("retransmission %d differs: %q / %q", i+1, last.start, last.get("Via"))
		}
	}
	p.answer200(last)
	rec.wait(t, mustMAC(tr.MAC), "NOTIFY-ACKED", 3*time.Second)
	p.expectSilence(2500*time.Millisecond, "after the late 200")
	if _, ok := rec.find(mustMAC(tr.MAC), "NOTIFY-TIMEOUT"); ok {
		t.Error("a timeout was recorded although the phone answered")
	}
}

// A phone that never answers the NOTIFY ends in a NOTIFY-TIMEOUT event.
func TestLANNotifyTimeout(t *testing.T) {
	n := newLAN(t)
	_, rec := n.start(t, Options{Answer: AnswerAll, NotifyTimeout: 2 * time.Second})
	p := n.phone(t)
	tr := traces[3] // M700
	p.send(tr.Build(p.ip.String()))
	p.mustRecv("200 OK")
	notifies := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if m := p.recv(time.Until(deadline)); m != nil && strings.HasPrefix(m.start, "NOTIFY ") {
			notifies++
		}
	}
	if notifies < 3 {
		t.Errorf("saw %d NOTIFY transmissions in 2s, want at least 3 (timer E: 0, 0.5, 1.5s)", notifies)
	}
	o := rec.wait(t, mustMAC(tr.MAC), "NOTIFY-TIMEOUT", 2*time.Second)
	if o.Event.OK || !strings.Contains(o.Event.Detail, "timed out") {
		t.Errorf("timeout observation = %+v", o)
	}
	if _, ok := rec.find(mustMAC(tr.MAC), "NOTIFY-ACKED"); ok {
		t.Error("ACKED recorded for a phone that never answered")
	}
}

// Policy: snom answers Snoms only, none records only, configured answers the
// listed MACs; reload switches between them without a restart.
func TestLANPolicyAndReload(t *testing.T) {
	n := newLAN(t)
	s, rec := n.start(t, Options{Answer: AnswerSnom})
	p := n.phone(t)
	yealink, d120 := traces[4], traces[2]

	p.send(yealink.Build(p.ip.String()))
	p.expectSilence(time.Second, "Yealink under answer=snom")
	o := rec.wait(t, mustMAC(yealink.MAC), "IGNORED", time.Second)
	if o.Event.OK || !strings.HasPrefix(o.Event.Detail, "seen, not answered: answer=snom") || o.IP != p.ip {
		t.Errorf("IGNORED observation = %+v", o)
	}

	p.send(d120.Build(p.ip.String()))
	p.answer200(skipTo(t, p, "NOTIFY"))
	rec.wait(t, mustMAC(d120.MAC), "NOTIFY-ACKED", 3*time.Second)

	if err := s.Reload(Options{Interfaces: []string{"eth0"}, Answer: AnswerNone, URL: testURLFunc}); err != nil {
		t.Fatal(err)
	}
	again := d120.WithHeader("Call-ID", "second-boot@x")
	p.send(again.Build(p.ip.String()))
	p.expectSilence(time.Second, "answer=none")
	if rec.count("IGNORED") != 2 {
		t.Errorf("IGNORED events = %d, want 2", rec.count("IGNORED"))
	}

	configured := func(m phone.MAC) bool { return m == mustMAC(yealink.MAC) }
	if err := s.Reload(Options{Interfaces: []string{"eth0"}, Answer: AnswerConfigured, Configured: configured,
		URL: func(local netip.Addr) string { return "http://" + local.String() + "/reloaded/{mac}" }}); err != nil {
		t.Fatal(err)
	}
	p.send(yealink.WithHeader("Call-ID", "yl-2@x").Build(p.ip.String()))
	nt := skipTo(t, p, "NOTIFY")
	if nt.body != "http://10.77.0.1/reloaded/{mac}" {
		t.Errorf("URL after reload = %q", nt.body)
	}
	p.answer200(nt)
	p.send(d120.WithHeader("Call-ID", "third-boot@x").Build(p.ip.String()))
	p.expectSilence(time.Second, "Snom not in [[phones]] under answer=configured")
}

// skipTo reads until a message whose start line begins with method.
func skipTo(t *testing.T, p *fakePhone, method string) *sipMsg {
	t.Helper()
	for i := 0; i < 5; i++ {
		m := p.mustRecv(method)
		if strings.HasPrefix(m.start, method+" ") {
			return m
		}
	}
	t.Fatalf("no %s", method)
	return nil
}

// A repeated SUBSCRIBE (same Call-ID/CSeq/From tag) gets the same 200 and no
// second NOTIFY, with and without a Via branch.
func TestLANRepeatedSubscribeAnsweredOnce(t *testing.T) {
	n := newLAN(t)
	_, rec := n.start(t, Options{Answer: AnswerAll})
	p := n.phone(t)
	for _, tr := range []trace{traces[0], traces[2], traces[3]} {
		t.Run(tr.Name, func(t *testing.T) {
			p.t = t
			sub := tr.Build(p.ip.String())
			p.send(sub)
			ok1 := p.mustRecv("200 OK")
			nt := p.mustRecv("NOTIFY")
			p.answer200(nt)
			rec.wait(t, mustMAC(tr.MAC), "NOTIFY-ACKED", 3*time.Second)
			p.send(sub)
			ok2 := p.mustRecv("200 OK to the repeat")
			if ok2.start != "SIP/2.0 200 OK" || ok2.get("To") != ok1.get("To") {
				t.Errorf("repeat answered %q with To %q, want the same 200 (To %q)", ok2.start, ok2.get("To"), ok1.get("To"))
			}
			p.expectSilence(time.Second, "second NOTIFY for a repeated SUBSCRIBE")
		})
	}
	if got := rec.count("SUBSCRIBE"); got != 3 {
		t.Errorf("%d SUBSCRIBE events for 3 phones sending twice each", got)
	}
}

// Anything that is not a ua-profile device SUBSCRIBE gets no answer at all.
func TestLANSilentToEverythingElse(t *testing.T) {
	n := newLAN(t)
	_, rec := n.start(t, Options{Answer: AnswerAll})
	p := n.phone(t)
	ip := p.ip.String()
	d := traces[2]
	for _, c := range nonPnP(ip) {
		p.send(c.raw)
		p.expectSilence(300*time.Millisecond, c.name)
	}
	// unicast to the responder's port as well
	for _, c := range nonPnP(ip) {
		p.sendTo(c.raw, netip.AddrPortFrom(srvAddr(), 5060))
		p.expectSilence(300*time.Millisecond, "unicast "+c.name)
	}
	rec.mu.Lock()
	recorded := len(rec.obs)
	rec.mu.Unlock()
	if recorded != 0 {
		t.Errorf("non-PnP traffic was recorded: %d observations", recorded)
	}
	p.send(d.Build(ip))
	if m := p.mustRecv("200 OK after the noise"); m.start != "SIP/2.0 200 OK" {
		t.Errorf("got %q", m.start)
	}
}

type datagram struct {
	name string
	raw  []byte
}

func nonPnP(ip string) []datagram {
	d := traces[2]
	return []datagram{
		{"OPTIONS", d.WithStartLine("OPTIONS sip:224.0.1.75 SIP/2.0").WithHeader("CSeq", "1 OPTIONS").WithHeader("Event", "").Build(ip)},
		{"REGISTER", d.WithStartLine("REGISTER sip:224.0.1.75 SIP/2.0").WithHeader("CSeq", "1 REGISTER").Build(ip)},
		{"NOTIFY", d.WithStartLine("NOTIFY sip:224.0.1.75 SIP/2.0").WithHeader("CSeq", "1 NOTIFY").Build(ip)},
		{"INVITE", d.WithStartLine("INVITE sip:224.0.1.75 SIP/2.0").WithHeader("CSeq", "1 INVITE").Build(ip)},
		{"SUBSCRIBE presence", d.WithHeader("Event", "presence").Build(ip)},
		{"SUBSCRIBE dialog", d.WithHeader("Event", "dialog").Build(ip)},
		{"SUBSCRIBE ua-profile application (AudioCodes)", d.WithHeader("Event", `ua-profile;profile-type="application";model="440HD"`).Build(ip)},
		{"SUBSCRIBE without MAC", d.WithStartLine("SUBSCRIBE sip:224.0.1.75 SIP/2.0").WithHeader("To", "<sip:224.0.1.75>").Build(ip)},
		{"SUBSCRIBE without Via", d.WithHeader("Via", "").Build(ip)},
		{"SUBSCRIBE no branch no tag", traces[0].WithHeader("From", "<sip:MAC%3a00135E874B49@intern.snom.de>").Build(ip)},
		{"stray response", []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.77.0.1:5060;branch=z9hG4bKnothing\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n")},
		{"garbage response", []byte("SIP/2.0 \x00\xff garbage\r\n\r\n")},
		{"binary garbage", []byte{0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x13}},
		{"CRLF keepalive", []byte("\r\n\r\n")},
		{"truncated SUBSCRIBE", d.Build(ip)[:80]},
	}
}

// A flood of garbage and other SIP at the group does not stop real phones
// from being answered.
func TestLANFloodStillAnswersPhones(t *testing.T) {
	n := newLAN(t)
	s, rec := n.start(t, Options{Answer: AnswerAll})
	p1, p2, flooder := n.phone(t), n.phone(t), n.phone(t)
	ctx, stop := context.WithCancel(context.Background())
	var sent atomic.Int64
	var failed int
	var lastErr error
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		noise := nonPnP(flooder.ip.String())
		for i := 0; ctx.Err() == nil; i++ {
			raw := noise[i%len(noise)].raw
			if i%7 == 0 {
				raw = bytes.Repeat([]byte{byte(i)}, 1+i%1400)
			}
			if _, err := flooder.conn.WriteTo(raw, groupAddr); err == nil {
				sent.Add(1)
			} else {
				failed++
				lastErr = err
			}
		}
	}()
	// Each real SUBSCRIBE waits for its share of noise, so the test proves
	// the same thing on a idle machine and on a loaded one.
	const noisePerSubscribe = 500
	waitNoise := func(n int64) {
		for sent.Load() < n && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
	}
	const perPhone = 20
	var resends atomic.Int64
	var wg sync.WaitGroup
	phonesDone := make(chan struct{})
	defer close(phonesDone)
	for _, p := range []*fakePhone{p1, p2} {
		// The phone's SIP stack: answers every NOTIFY (retransmissions of an
		// earlier one too, as a phone does) and reports the Call-IDs.
		notified := make(chan string, 64)
		go func() {
			for {
				m := p.recv(time.Second)
				select {
				case <-phonesDone:
					return
				default:
				}
				if m == nil {
					continue
				}
				if strings.HasPrefix(m.start, "NOTIFY ") {
					p.answer200(m)
					select {
					case notified <- m.get("Call-ID"):
					default:
					}
				}
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perPhone; i++ {
				waitNoise(int64(i+1) * noisePerSubscribe)
				mac := fmt.Sprintf("000413%02X%04X", p.ip.As4()[3], i)
				callID := fmt.Sprintf("flood-%s-%d@x", mac, i)
				tr := traces[2].
					WithStartLine("SUBSCRIBE sip:MAC%3a"+mac+"@224.0.1.75 SIP/2.0").
					WithHeader("To", "<sip:MAC%3a"+mac+"@224.0.1.75>").
					WithHeader("Call-ID", callID)
				// Like a real UA (RFC 3261 timer E), the phone resends its
				// SUBSCRIBE when nothing comes back: a flood can overflow any
				// receive buffer, and that is what the phones' own retry covers.
				raw := tr.Build(p.ip.String())
				wait := 500 * time.Millisecond
				answered := false
				for try := 0; try < 5 && !answered; try++ {
					if try > 0 {
						resends.Add(1)
					}
					p.send(raw)
					timer := time.After(wait)
				waiting:
					for {
						select {
						case id := <-notified:
							if id == callID {
								answered = true
								break waiting
							}
						case <-timer:
							break waiting
						}
					}
					wait *= 2
				}
				if !answered {
					t.Errorf("phone %s, SUBSCRIBE %d: no NOTIFY after 5 tries during the flood", p.ip, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	stop()
	<-floodDone
	deadline := time.Now().Add(5 * time.Second)
	for rec.count("NOTIFY-ACKED") < 2*perPhone && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := rec.count("NOTIFY-ACKED"); got != 2*perPhone {
		t.Errorf("%d of %d exchanges acknowledged during the flood", got, 2*perPhone)
	}
	if s.dropped.Load() == 0 {
		t.Error("no datagram was dropped: the flood did not reach the responder")
	}
	t.Logf("flood: %d datagrams sent (%d send errors, last %v), %d dropped by the responder; %d SUBSCRIBE resends needed",
		sent.Load(), failed, lastErr, s.dropped.Load(), resends.Load())
	if s.dropped.Load() < noisePerSubscribe*perPhone/2 {
		t.Errorf("only %d noise datagrams reached the responder", s.dropped.Load())
	}
}

// listenPBX opens a UDP socket on 0.0.0.0:5060 in srv, like a PBX would.
func (n *lan) listenPBX(t *testing.T, reuseAddr bool) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := n.srv.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if reuseAddr {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5060")
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("PBX socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// M6: a PBX already owns unicast 5060 (sharing allowed with SO_REUSEADDR).
// PnP binds the group address, answers from 5060 and sends the NOTIFY from
// its own unicast port, and unicast 5060 still goes to the PBX.
func TestLANSharesHostWithPBX(t *testing.T) {
	n := newLAN(t)
	pbx := n.listenPBX(t, true)
	s, rec := n.start(t, Options{Answer: AnswerAll})
	if !s.shared || s.notifyPort == 5060 {
		t.Fatalf("shared = %v, notify port %d; want the group-bound mode", s.shared, s.notifyPort)
	}
	p := n.phone(t)
	tr := traces[0] // old desk phone, no branch
	sub := tr.Build(p.ip.String())
	p.send(sub)
	ok := skipTo2(t, p, "SIP/2.0 200")
	checkOK(t, sub, ok, srvAddr())
	nt := skipTo(t, p, "NOTIFY")
	checkNotify(t, sub, ok, nt, srvAddr(), s.notifyPort)
	p.answer200(nt)
	rec.wait(t, mustMAC(tr.MAC), "NOTIFY-ACKED", 3*time.Second)

	// Unicast to 5060 belongs to the PBX, not to us.
	opt := []byte("OPTIONS sip:10.77.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + p.ip.String() + ":5060;branch=z9hG4bKpbx\r\nContent-Length: 0\r\n\r\n")
	p.sendTo(opt, netip.AddrPortFrom(srvAddr(), 5060))
	buf := make([]byte, 2048)
	deadline := time.Now().Add(2 * time.Second)
	for {
		pbx.SetReadDeadline(deadline)
		k, _, err := pbx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("the PBX did not get the unicast OPTIONS: %v", err)
		}
		if bytes.HasPrefix(buf[:k], []byte("OPTIONS ")) {
			break // the PBX also sees the group's SUBSCRIBE; skip it
		}
	}
	p.expectSilence(500*time.Millisecond, "PnP answering unicast OPTIONS meant for the PBX")
}

func skipTo2(t *testing.T, p *fakePhone, prefix string) *sipMsg {
	t.Helper()
	for i := 0; i < 5; i++ {
		if m := p.mustRecv(prefix); strings.HasPrefix(m.start, prefix) {
			return m
		}
	}
	t.Fatalf("no %s", prefix)
	return nil
}

// A PBX that holds 0.0.0.0:5060 without allowing sharing: Bind fails and the
// message names the process.
func TestLANPortHeldExclusively(t *testing.T) {
	n := newLAN(t)
	n.listenPBX(t, false)
	s, err := New(Options{Interfaces: []string{"eth0"}, Answer: AnswerAll}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = n.srv.Do(func() error { return s.Bind(context.Background()) })
	if err == nil {
		t.Fatal("Bind succeeded although 0.0.0.0:5060 is held without SO_REUSEADDR")
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), os.Getpid())
	for _, part := range []string{"UDP port 5060 is held by " + want, "[pnp] enabled = false"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error does not wrap EADDRINUSE: %v", err)
	}
}

// Bind names a missing interface clearly.
func TestLANBindUnknownInterface(t *testing.T) {
	n := newLAN(t)
	s, err := New(Options{Interfaces: []string{"eth9"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = n.srv.Do(func() error { return s.Bind(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), `interface "eth9"`) {
		t.Errorf("Bind error = %v", err)
	}
}

// The URL names the server's address on the phone's subnet, taken from the
// datagram's arrival (IP_PKTINFO), not just the interface's first address.
func TestLANURLUsesAddressOnPhonesSubnet(t *testing.T) {
	n := newLAN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := n.srv.Run(ctx, "ip", "addr", "add", "10.88.0.1/24", "dev", "eth0"); err != nil {
		t.Fatalf("second address: %v\n%s", err, out)
	}
	_, rec := n.start(t, Options{Answer: AnswerAll})
	h := n.l.AddHost("far", lantest.HostOptions{Addr: "10.88.0.5/24", MAC: "00:04:13:88:00:05"})
	waitLink(t, h, netip.MustParseAddr("10.88.0.1"))
	p := &fakePhone{t: t, host: h, ip: netip.MustParseAddr("10.88.0.5")}
	if err := h.Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: p.ip.AsSlice(), Port: 5060})
		p.conn = c
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.conn.Close()
	tr := traces[2]
	sub := tr.Build(p.ip.String())
	p.send(sub)
	ok := p.mustRecv("200 OK")
	checkOK(t, sub, ok, netip.MustParseAddr("10.88.0.1"))
	nt := p.mustRecv("NOTIFY")
	checkNotify(t, sub, ok, nt, netip.MustParseAddr("10.88.0.1"), 5060)
	p.answer200(nt)
	rec.wait(t, mustMAC(tr.MAC), "NOTIFY-ACKED", 3*time.Second)
}

// A flood of distinct SUBSCRIBEs whose NOTIFYs are never answered (a
// flooder that never reads its socket): the pending NOTIFYs stay at the cap,
// the rest are shed (sent once), a real phone sending right after the flood
// is answered, and the pending state drains once the NOTIFYs time out.
func TestLANFloodOfUnansweredSubscribes(t *testing.T) {
	n := newLAN(t)
	const maxPending = 16
	s, rec := n.start(t, Options{Answer: AnswerAll, MaxPending: maxPending, NotifyTimeout: 2 * time.Second})
	flooder, p := n.phone(t), n.phone(t)
	pending := func() int {
		s.pmu.Lock()
		defer s.pmu.Unlock()
		return len(s.pending)
	}
	const flood = 2000
	peak := 0
	for i := 0; i < flood; i++ {
		mac := fmt.Sprintf("000413F%05X", i)
		raw := traces[7].WithStartLine("SUBSCRIBE sip:MAC%3a"+mac+"@224.0.1.75 SIP/2.0").
			WithHeader("Call-ID", "flood-"+mac).Build(flooder.ip.String())
		flooder.send(raw)
		if i%100 == 0 {
			peak = max(peak, pending())
			time.Sleep(5 * time.Millisecond) // about 20,000/s: within the server's receive buffer
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.count("SUBSCRIBE") < flood/2 && time.Now().Before(deadline) {
		peak = max(peak, pending())
		time.Sleep(10 * time.Millisecond)
	}
	if got := rec.count("SUBSCRIBE"); got < flood/2 {
		t.Fatalf("only %d of %d flood SUBSCRIBEs reached the responder", got, flood)
	}
	if peak > maxPending {
		t.Errorf("%d NOTIFYs pending at the peak, cap %d", peak, maxPending)
	}

	tr := traces[2]
	sub := tr.Build(p.ip.String())
	p.send(sub)
	ok := skipTo2(t, p, "SIP/2.0 200")
	checkOK(t, sub, ok, srvAddr())
	nt := skipTo(t, p, "NOTIFY")
	checkNotify(t, sub, ok, nt, srvAddr(), 5060)
	p.answer200(nt)
	if o := rec.wait(t, mustMAC(tr.MAC), "SUBSCRIBE", time.Second); !o.Event.OK {
		t.Errorf("the real phone's SUBSCRIBE event = %+v", o)
	}

	deadline = time.Now().Add(5 * time.Second)
	for pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := pending(); got != 0 {
		t.Errorf("%d NOTIFYs still pending after their timeout", got)
	}
	// Every NOTIFY not shed held a pending slot, freed only by a timeout
	// (the flooder never answers) or the real phone's 200: so, once all is
	// settled, all but those were shed, however long the flood took.
	if shed, answered, timeouts := s.Shed(), rec.count("SUBSCRIBE"), rec.count("NOTIFY-TIMEOUT"); shed == 0 || uint64(answered)-shed > uint64(timeouts+1) {
		t.Errorf("shed %d of %d answered SUBSCRIBEs with a cap of %d and %d timeouts", shed, answered, maxPending, timeouts)
	}
	t.Logf("flood: %d SUBSCRIBEs sent, %d answered, %d NOTIFYs shed, peak pending %d, %d timeouts",
		flood, rec.count("SUBSCRIBE"), s.Shed(), peak, rec.count("NOTIFY-TIMEOUT"))
}
