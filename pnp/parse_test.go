package pnp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/phone"
)

var testParser = sip.NewParser()

func TestParseSubscribeTraces(t *testing.T) {
	for _, tr := range traces {
		t.Run(tr.Name, func(t *testing.T) {
			_, s, err := parseSubscribe(testParser, tr.Build("192.168.10.67"))
			if err != nil {
				t.Fatalf("parseSubscribe: %v", err)
			}
			if got := s.MAC.String(); got != tr.MAC {
				t.Errorf("MAC = %s, want %s", got, tr.MAC)
			}
			if got := s.Model(); got != tr.Model {
				t.Errorf("Model = %q, want %q", got, tr.Model)
			}
			if got := s.Firmware(); got != tr.Firmware {
				t.Errorf("Firmware = %q, want %q", got, tr.Firmware)
			}
			if s.Vendor != tr.Vendor || s.ProfileType != tr.Profile {
				t.Errorf("vendor/profile = %q/%q, want %q/%q", s.Vendor, s.ProfileType, tr.Vendor, tr.Profile)
			}
			if s.IsSnom() != tr.Snom {
				t.Errorf("IsSnom = %v, want %v", s.IsSnom(), tr.Snom)
			}
			if !strings.HasPrefix(s.Event, "ua-profile;") {
				t.Errorf("Event = %q, want the whole header value", s.Event)
			}
		})
	}
}

// Every MAC spelling phones use, in the Request-URI of a whole datagram
// read by sipgo's parser (which reads "MAC:..." as a user with a password).
func TestParseSubscribeMACSpellings(t *testing.T) {
	for _, user := range []string{"MAC%3a000413a11fa7", "MAC%3A000413A11FA7", "MAC:000413A11FA7", "MAC=000413A11FA7", "MAC000413A11FA7", "000413A11FA7"} {
		raw := traces[2].WithStartLine("SUBSCRIBE sip:"+user+"@224.0.1.75 SIP/2.0").WithHeader("To", "<sip:"+user+"@224.0.1.75>").Build("10.0.0.2")
		_, s, err := parseSubscribe(testParser, raw)
		if err != nil || s.MAC.String() != "000413A11FA7" {
			t.Errorf("%s: MAC %v, err %v", user, s.MAC, err)
		}
	}
}

// The replies, built as sipgo messages and written to the wire, read back
// (with sipgo's parser) as a phone must understand them.
func TestRepliesOnTheWire(t *testing.T) {
	local := netip.MustParseAddr("10.77.0.1")
	src := netip.MustParseAddrPort("192.168.10.67:5062")
	for _, tr := range traces {
		t.Run(tr.Name, func(t *testing.T) {
			raw := tr.Build("192.168.10.67")
			req, sub, err := parseSubscribe(testParser, raw)
			if err != nil {
				t.Fatal(err)
			}
			fromTag, _ := req.From().Params.Get("tag")
			callID, cseq := req.CallID().Value(), req.CSeq().Value()
			hadRport := req.Via().Params.Has("rport")
			ok := build200(req, src, "ourtag", local, 5060)
			okRaw := []byte(ok.String())
			msg, err := testParser.ParseSIP(okRaw)
			if err != nil {
				t.Fatalf("our 200 does not parse:\n%s\n%v", okRaw, err)
			}
			res := msg.(*sip.Response)
			if res.StatusCode != 200 || res.CallID().Value() != callID || res.CSeq().Value() != cseq {
				t.Errorf("200 = %d, Call-ID %q, CSeq %q; want %q, %q", res.StatusCode, res.CallID().Value(), res.CSeq().Value(), callID, cseq)
			}
			if tag, _ := res.To().Params.Get("tag"); tag != "ourtag" {
				t.Errorf("To tag = %q", tag)
			}
			if recv, _ := res.Via().Params.Get("received"); recv != "192.168.10.67" {
				t.Errorf("Via received = %q in %q", recv, res.Via().Value())
			}
			if hadRport {
				if rp, _ := res.Via().Params.Get("rport"); rp != "5062" {
					t.Errorf("Via rport = %q, want the source port", rp)
				}
			}
			if _, has := res.Via().Params.Get("branch"); has != req.Via().Params.Has("branch") {
				t.Errorf("200 Via %q: branch presence differs from the SUBSCRIBE's", res.Via().Value())
			}
			if h := res.GetHeader("Expires"); h == nil || h.Value() != "0" {
				t.Errorf("Expires = %v", h)
			}
			if c := res.Contact(); c == nil || c.Address.Host != "10.77.0.1" || c.Address.Port != 5060 {
				t.Errorf("Contact = %v", c)
			}

			nRaw := []byte(buildNotify(req, ok, sub.Event, src, local, 5060, "z9hG4bKabc", "http://10.77.0.1/{mac}").String())
			msg, err = testParser.ParseSIP(nRaw)
			if err != nil {
				t.Fatalf("our NOTIFY does not parse:\n%s\n%v", nRaw, err)
			}
			n := msg.(*sip.Request)
			if n.Method != sip.NOTIFY || string(n.Body()) != "http://10.77.0.1/{mac}" {
				t.Errorf("NOTIFY %s body %q", n.Method, n.Body())
			}
			if n.Via().Host != "10.77.0.1" || n.Via().Port != 5060 || len(n.GetHeaders("Via")) != 1 {
				t.Errorf("NOTIFY Via = %q", n.Via().Value())
			}
			if b, _ := n.Via().Params.Get("branch"); b != "z9hG4bKabc" {
				t.Errorf("NOTIFY branch = %q", b)
			}
			if tag, _ := n.From().Params.Get("tag"); tag != "ourtag" {
				t.Errorf("NOTIFY From tag = %q", tag)
			}
			if tag, _ := n.To().Params.Get("tag"); tag != fromTag {
				t.Errorf("NOTIFY To tag = %q, want the phone's %q", tag, fromTag)
			}
			if n.CallID().Value() != res.CallID().Value() || n.CSeq().Value() != "1 NOTIFY" {
				t.Errorf("NOTIFY Call-ID %q CSeq %q", n.CallID().Value(), n.CSeq().Value())
			}
			for name, want := range map[string]string{"Event": sub.Event, "Subscription-State": "terminated;reason=timeout", "Content-Type": "application/url"} {
				if h := n.GetHeader(name); h == nil || h.Value() != want {
					t.Errorf("NOTIFY %s = %v, want %q", name, h, want)
				}
			}
		})
	}
}

// viaOf parses a Via header value with sipgo.
func viaOf(t *testing.T, via string) *sip.ViaHeader {
	t.Helper()
	msg, err := testParser.ParseSIP([]byte("SUBSCRIBE sip:x@y SIP/2.0\r\nVia: " + via + "\r\n\r\n"))
	if err != nil {
		t.Fatalf("Via %q: %v", via, err)
	}
	return msg.Via()
}

func TestReplyDest(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.9:40000")
	tests := []struct{ via, want string }{
		{"SIP/2.0/UDP 10.0.0.9:5060;rport", "10.0.0.9:40000"},
		{"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx", "10.0.0.9:5060"},
		{"SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx", "10.0.0.9:5070"}, // source address, Via port
		{"SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx", "10.0.0.9:40000"},
	}
	for _, tt := range tests {
		if got := replyDest(viaOf(t, tt.via), src).String(); got != tt.want {
			t.Errorf("replyDest(%q) = %s, want %s", tt.via, got, tt.want)
		}
	}
}

// The NOTIFY goes to the phone's Contact when it is a SIP URI, else to the
// address the SUBSCRIBE came from.
func TestNotifyTarget(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.9:5062")
	local := netip.MustParseAddr("10.0.0.1")
	for contact, want := range map[string]string{
		"<sip:192.168.10.67:5060>":           "sip:192.168.10.67:5060",
		"<sip:512@10.0.0.90>":                "sip:512@10.0.0.90",
		`"Desk" <sip:a@10.0.0.9:5062>;q=0.5`: "sip:a@10.0.0.9:5062",
		"<tel:123>":                          "sip:10.0.0.9:5062",
		"":                                   "sip:10.0.0.9:5062",
	} {
		tr := traces[2].WithHeader("Contact", contact)
		req, sub, err := parseSubscribe(testParser, tr.Build("10.0.0.9"))
		if err != nil {
			t.Fatalf("Contact %q: %v", contact, err)
		}
		ok := build200(req, src, "t", local, 5060)
		n := buildNotify(req, ok, sub.Event, src, local, 5060, "z9hG4bKx", "http://x/")
		if got := n.Recipient.String(); got != want {
			t.Errorf("Contact %q: NOTIFY to %q, want %q", contact, got, want)
		}
	}
}

func TestParseSubscribeRejects(t *testing.T) {
	desk := traces[2] // D120
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"OPTIONS", desk.WithStartLine("OPTIONS sip:224.0.1.75 SIP/2.0").Build("10.0.0.2"), ErrNotSubscribe},
		{"NOTIFY", desk.WithStartLine("NOTIFY sip:224.0.1.75 SIP/2.0").Build("10.0.0.2"), ErrNotSubscribe},
		{"lower-case method", desk.WithStartLine("subscribe sip:MAC%3a000413A11FA7@x SIP/2.0").Build("10.0.0.2"), ErrNotSubscribe},
		{"response", []byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n"), ErrNotSubscribe},
		{"presence event", desk.WithHeader("Event", "presence").Build("10.0.0.2"), ErrNotPnP},
		{"ua-profile for an application", desk.WithHeader("Event", `ua-profile;profile-type="application";model="440HD"`).Build("10.0.0.2"), ErrNotPnP},
		{"no Event", desk.WithHeader("Event", "").Build("10.0.0.2"), ErrNotPnP},
		{"message-summary", desk.WithHeader("Event", "message-summary").Build("10.0.0.2"), ErrNotPnP},
		{"MAC only in From (M700 style From is not enough)", traces[3].WithStartLine("SUBSCRIBE sip:224.0.1.75 SIP/2.0").WithHeader("To", "<sip:224.0.1.75>").Build("10.0.0.2"), ErrNoMAC},
		{"MAC only in From", desk.WithStartLine("SUBSCRIBE sip:pnp@224.0.1.75 SIP/2.0").WithHeader("To", "<sip:pnp@224.0.1.75>").Build("10.0.0.2"), ErrNoMAC},
		{"11 hex digits", desk.WithStartLine("SUBSCRIBE sip:MAC%3a000413A11FA@x SIP/2.0").WithHeader("To", "<sip:x@y>").Build("10.0.0.2"), ErrNoMAC},
		{"no Via", desk.WithHeader("Via", "").Build("10.0.0.2"), ErrMalformed},
		{"no Call-ID", desk.WithHeader("Call-ID", "").Build("10.0.0.2"), ErrMalformed},
		{"no branch and no From tag", desk.WithHeader("From", "<sip:MAC%3a000413A11FA7@miko.ru>").Build("10.0.0.2"), ErrMalformed},
		{"no SIP version", []byte("SUBSCRIBE sip:MAC%3a000413A11FA7@x\r\n\r\n"), ErrMalformed},
		{"header without colon", []byte("SUBSCRIBE sip:MAC%3a000413A11FA7@x SIP/2.0\r\nEvent ua-profile\r\n\r\n"), ErrMalformed},
		{"truncated", desk.Build("10.0.0.2")[:80], ErrMalformed},
		{"empty", nil, ErrNotSubscribe},
		{"garbage", []byte("\x00\x01\xffhello"), ErrNotSubscribe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseSubscribe(testParser, tt.raw)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMACFromURI(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = no MAC
	}{
		{"sip:MAC%3a00135E874B49@intern.snom.de", "00135E874B49"},
		{"sip:MAC%3A00135E874B49@intern.snom.de", "00135E874B49"},
		{"sip:mac%3a00135e874b49@x", "00135E874B49"},
		{"sip:MAC:00135E874B49@x", "00135E874B49"},
		{"sip:MAC=00135E874B49@x", "00135E874B49"},
		{"sip:MAC00135E874B49@x", "00135E874B49"},
		{"sip:00135E874B49@x", "00135E874B49"},
		{"SIP:MAC%3a00135E874B49@x", "00135E874B49"},
		{"sips:MAC%3a00135E874B49@x", "00135E874B49"},
		{"sip:MAC%3a00135E874B49@224.0.1.75;transport=udp", "00135E874B49"},
		{"sip:512@10.0.0.90", ""},
		{"sip:MAC%3a00135E874B4@x", ""},
		{"sip:MAC%3a00135E874B490@x", ""},
		{"sip:MAC%3a00135E874G49@x", ""},
		{"sip:MAC%3a00:13:5E:87:4B:49@x", ""},
		{"sip:00135E874B49", ""}, // no user part
		{"tel:00135E874B49@x", ""},
		{"sip:MAC%3@x", ""},
	}
	for _, tt := range tests {
		var u sip.Uri
		if err := sip.ParseUri(tt.in, &u); err != nil {
			t.Fatalf("ParseUri(%q): %v", tt.in, err)
		}
		m, ok := macFromURI(&u)
		got := ""
		if ok {
			got = m.String()
		}
		if got != tt.want {
			t.Errorf("macFromURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseEventParams(t *testing.T) {
	var s Subscribe
	if !parseEvent(`UA-Profile ; Profile-Type=device ; vendor="sn;om" ; model="snomD785";version=10.1`, &s) {
		t.Fatal("not accepted")
	}
	if s.ProfileType != "device" || s.Vendor != "sn;om" || s.EventModel != "snomD785" || s.Version != "10.1" {
		t.Errorf("params = %+v", s)
	}
	var bare Subscribe
	if !parseEvent("ua-profile", &bare) {
		t.Error("bare ua-profile (no profile-type) should be accepted")
	}
}

func TestDecide(t *testing.T) {
	snom := Subscribe{MAC: mustMAC("000413A11FA7"), Vendor: "snom"}
	snomOEM := Subscribe{MAC: mustMAC("000413A11FA7"), Vendor: "OEM"}
	rtx := Subscribe{MAC: mustMAC("00087B000001"), Vendor: "OEM"}
	vendorOnly := Subscribe{MAC: mustMAC("00135E874B49"), Vendor: "Snom"}
	yealink := Subscribe{MAC: mustMAC("805EC0123456"), Vendor: "Yealink"}
	configured := func(m phone.MAC) bool { return m == mustMAC("805EC0123456") }
	tests := []struct {
		name   string
		s      Subscribe
		policy string
		want   Decision
	}{
		{"snom by OUI and vendor", snom, AnswerSnom, Answer},
		{"snom by OUI, vendor OEM", snomOEM, AnswerSnom, Answer},
		{"snom by RTX OUI", rtx, AnswerSnom, Answer},
		{"snom by vendor only", vendorOnly, AnswerSnom, Answer},
		{"empty policy means snom", yealink, "", RecordOnly},
		{"yealink under snom", yealink, AnswerSnom, RecordOnly},
		{"yealink under all", yealink, AnswerAll, Answer},
		{"yealink configured", yealink, AnswerConfigured, Answer},
		{"snom not configured", snom, AnswerConfigured, RecordOnly},
		{"snom under none", snom, AnswerNone, RecordOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := decide(tt.s, tt.policy, configured)
			if got != tt.want || reason == "" {
				t.Errorf("decide = %v (%q), want %v", got, reason, tt.want)
			}
		})
	}
	if d, _ := decide(snom, AnswerConfigured, nil); d != RecordOnly {
		t.Error("configured with no lookup must not answer")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, a := range []string{"snom", "configured", "all", "none", ""} {
		if _, err := New(Options{Answer: a}, nil, nil); err != nil {
			t.Errorf("answer %q: %v", a, err)
		}
	}
	if _, err := New(Options{Answer: "some"}, nil, nil); err == nil || !strings.Contains(err.Error(), `"snom"`) {
		t.Errorf("bad answer not rejected clearly: %v", err)
	}
	if _, err := New(Options{Port: 70000}, nil, nil); err == nil {
		t.Error("port 70000 accepted")
	}
}

func TestReloadRejectsSocketChanges(t *testing.T) {
	s, err := New(Options{Interfaces: []string{"eth0"}, Answer: "none"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(Options{Interfaces: []string{"eth0"}, Answer: "all"}); err != nil {
		t.Fatalf("policy reload: %v", err)
	}
	if got := s.opts.Load().Answer; got != "all" {
		t.Errorf("answer after reload = %q", got)
	}
	if err := s.Reload(Options{Interfaces: []string{"eth1"}, Answer: "all"}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("interface change: %v", err)
	}
	if err := s.Reload(Options{Interfaces: []string{"eth0"}, Answer: "bogus"}); err == nil {
		t.Error("bad policy accepted on reload")
	}
	if got := s.opts.Load().Answer; got != "all" {
		t.Errorf("a failed reload changed the answer to %q", got)
	}
}

func TestSeenCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const ttl = time.Minute
	c := newSeenCache(ttl)
	c.now = func() time.Time { return now }
	t1, dup := c.tag("a")
	if dup || t1 == "" {
		t.Fatalf("first = %q %v", t1, dup)
	}
	t2, dup := c.tag("a")
	if !dup || t2 != t1 {
		t.Fatalf("repeat = %q %v, want %q again", t2, dup, t1)
	}
	if tb, dup := c.tag("b"); dup || tb == t1 {
		t.Fatalf("other key = %q %v", tb, dup)
	}
	now = now.Add(ttl + 1)
	t3, dup := c.tag("a")
	if dup || t3 == t1 {
		t.Fatalf("after ttl = %q %v; want a new answer", t3, dup)
	}
	if len(c.entries) != 1 {
		t.Errorf("expired entries not swept: %d left", len(c.entries))
	}
}

func mustMAC(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func FuzzParseSubscribe(f *testing.F) {
	for _, tr := range traces {
		f.Add(tr.Build("192.168.10.67"))
	}
	f.Add([]byte("SUBSCRIBE sip:MAC%3a@x SIP/2.0\r\nEvent: ua-profile;vendor=\"\r\n\r\n"))
	f.Add([]byte("SUBSCRIBE  SIP/2.0\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, s, err := parseSubscribe(testParser, data)
		if err != nil {
			return
		}
		if s.MAC.IsZero() && !strings.Contains(strings.ToUpper(string(data)), "000000000000") {
			t.Fatalf("accepted without a MAC: %q", data)
		}
		if m := s.Model(); m != "" && !phone.ValidModel(m) {
			t.Fatalf("invalid model %q", m)
		}
		if !strings.HasPrefix(string(data), "SUBSCRIBE ") {
			t.Fatalf("accepted a non-SUBSCRIBE: %q", data)
		}
		if s.ProfileType != "" && !strings.EqualFold(s.ProfileType, "device") {
			t.Fatalf("accepted profile-type %q", s.ProfileType)
		}
	})
}

// Any datagram through the whole responder: no panic, and whatever it
// sends is SIP that sipgo's parser reads back, with the SUBSCRIBE's Call-ID.
func FuzzDatagram(f *testing.F) {
	for _, tr := range traces {
		f.Add(tr.Build("192.168.10.67"))
	}
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.77.0.1:5060;branch=z9hG4bKx\r\nCSeq: 1 NOTIFY\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &fakeConn{}
		s, err := New(Options{Answer: AnswerAll}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.recv, s.notify, s.fallback = c, c, netip.MustParseAddr("10.77.0.1")
		s.onDatagram(data, netip.MustParseAddrPort("192.168.10.67:5060"), arrival{}, false)
		s.pmu.Lock()
		for _, p := range s.pending {
			p.timer.Stop()
		}
		s.pmu.Unlock()
		if len(c.sent) == 0 {
			return
		}
		req, _, err := parseSubscribe(testParser, data)
		if err != nil {
			t.Fatalf("answered a datagram that is no PnP SUBSCRIBE (%v): %q", err, data)
		}
		for _, raw := range c.sent {
			msg, err := testParser.ParseSIP(raw)
			if err != nil {
				t.Fatalf("sent what sipgo cannot parse (%v):\n%s", err, raw)
			}
			if msg.CallID() == nil || msg.CallID().Value() != req.CallID().Value() {
				t.Fatalf("Call-ID %v, want %q in\n%s", msg.CallID(), req.CallID().Value(), raw)
			}
		}
	})
}

// fakeConn records what is written to it and fails reads with err.
type fakeConn struct {
	mu   sync.Mutex
	sent [][]byte
	err  error
}

func (c *fakeConn) ReadMsgUDPAddrPort(b, oob []byte) (int, int, int, netip.AddrPort, error) {
	return 0, 0, 0, netip.AddrPort{}, c.err
}

func (c *fakeConn) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, bytes.Clone(b))
	c.mu.Unlock()
	return len(b), nil
}

func (c *fakeConn) Close() error { return nil }
