package pnp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/phone"
)

func TestParseSubscribeTraces(t *testing.T) {
	for _, tr := range traces {
		t.Run(tr.Name, func(t *testing.T) {
			s, err := ParseSubscribe(tr.Build("192.168.10.67"))
			if err != nil {
				t.Fatalf("ParseSubscribe: %v", err)
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

// The replies are built from raw header values; sipgo's parser, an
// independent SIP implementation, must read them back as intended.
func TestRepliesParseWithSipgo(t *testing.T) {
	parser := sip.NewParser()
	local := netip.MustParseAddr("10.77.0.1")
	src := netip.MustParseAddrPort("192.168.10.67:5062")
	for _, tr := range traces {
		t.Run(tr.Name, func(t *testing.T) {
			r, err := parseRequest(tr.Build("192.168.10.67"))
			if err != nil {
				t.Fatal(err)
			}
			okRaw := build200(nil, &r, src, "ourtag", local, 5060)
			msg, err := parser.ParseSIP(okRaw)
			if err != nil {
				t.Fatalf("sipgo cannot parse our 200:\n%s\n%v", okRaw, err)
			}
			res := msg.(*sip.Response)
			if res.StatusCode != 200 || res.CallID().Value() != r.callID || res.CSeq().Value() != r.cseq {
				t.Errorf("200 = %d, Call-ID %q, CSeq %q", res.StatusCode, res.CallID().Value(), res.CSeq().Value())
			}
			if tag, _ := res.To().Params.Get("tag"); tag != "ourtag" {
				t.Errorf("To tag = %q", tag)
			}
			if recv, _ := res.Via().Params.Get("received"); recv != "192.168.10.67" {
				t.Errorf("Via received = %q in %q", recv, res.Via().Value())
			}
			if _, hasRport := headerParam(r.vias[0], "rport"); hasRport {
				if rp, _ := res.Via().Params.Get("rport"); rp != "5062" {
					t.Errorf("Via rport = %q, want the source port", rp)
				}
			}
			if h := res.GetHeader("Expires"); h == nil || h.Value() != "0" {
				t.Errorf("Expires = %v", h)
			}

			nRaw := buildNotify(nil, &r, src, "ourtag", local, 5060, "z9hG4bKabc", "http://10.77.0.1/{mac}")
			msg, err = parser.ParseSIP(nRaw)
			if err != nil {
				t.Fatalf("sipgo cannot parse our NOTIFY:\n%s\n%v", nRaw, err)
			}
			n := msg.(*sip.Request)
			if n.Method != sip.NOTIFY || string(n.Body()) != "http://10.77.0.1/{mac}" {
				t.Errorf("NOTIFY %s body %q", n.Method, n.Body())
			}
			if n.Via().Host != "10.77.0.1" || n.Via().Port != 5060 {
				t.Errorf("NOTIFY Via = %q", n.Via().Value())
			}
			if b, _ := n.Via().Params.Get("branch"); b != "z9hG4bKabc" {
				t.Errorf("NOTIFY branch = %q", b)
			}
			if tag, _ := n.From().Params.Get("tag"); tag != "ourtag" {
				t.Errorf("NOTIFY From tag = %q", tag)
			}
			if tag, _ := n.To().Params.Get("tag"); tag != r.fromTag {
				t.Errorf("NOTIFY To tag = %q, want the phone's %q", tag, r.fromTag)
			}
			for name, want := range map[string]string{"Event": r.Event, "Subscription-State": "terminated;reason=timeout", "Content-Type": "application/url"} {
				if h := n.GetHeader(name); h == nil || h.Value() != want {
					t.Errorf("NOTIFY %s = %v, want %q", name, h, want)
				}
			}
		})
	}
}

func TestReplyDest(t *testing.T) {
	src := netip.MustParseAddrPort("10.0.0.9:40000")
	tests := []struct{ via, want string }{
		{"SIP/2.0/UDP 10.0.0.9:5060;rport", "10.0.0.9:40000"},
		{"SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx", "10.0.0.9:5060"},
		{"SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKx", "10.0.0.9:5070"}, // source address, Via port
		{"SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx", "10.0.0.9:40000"},
		{"SIP/2.0/UDP 10.0.0.9:99999", "10.0.0.9:40000"},
		{"garbage", "10.0.0.9:40000"},
	}
	for _, tt := range tests {
		if got := replyDest(tt.via, src).String(); got != tt.want {
			t.Errorf("replyDest(%q) = %s, want %s", tt.via, got, tt.want)
		}
	}
}

func TestContactURI(t *testing.T) {
	for in, want := range map[string]string{
		"<sip:192.168.10.67:5060>":           "sip:192.168.10.67:5060",
		"<sip:512@10.0.0.90>":                "sip:512@10.0.0.90",
		`"Desk" <sip:a@10.0.0.9:5062>;q=0.5`: "sip:a@10.0.0.9:5062",
		"sip:10.0.0.9:5060;expires=0":        "sip:10.0.0.9:5060",
		"<tel:123>":                          "",
		"<sip:broken":                        "",
		"":                                   "",
		"<sip:a b@c>":                        "",
		"*":                                  "",
	} {
		if got := contactURI(in); got != want {
			t.Errorf("contactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseResponse(t *testing.T) {
	res, ok := parseResponse([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;received=1.2.3.4\r\nCSeq: 1 NOTIFY\r\n\r\n"))
	if !ok || res.code != 200 || res.branch != "z9hG4bKabc" || res.method != "NOTIFY" || res.reason != "OK" {
		t.Errorf("parseResponse = %+v, %v", res, ok)
	}
	for _, bad := range []string{"SIP/2.0 2x0 OK\r\n\r\n", "SIP/2.0 200 OK\r\nCSeq: 1 NOTIFY\r\n\r\n", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=b\r\n\r\n", "SIP/2.0 99 X\r\n", ""} {
		if r, ok := parseResponse([]byte(bad)); ok {
			t.Errorf("parseResponse(%q) accepted: %+v", bad, r)
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
		{"empty", nil, ErrNotSubscribe},
		{"garbage", []byte("\x00\x01\xffhello"), ErrNotSubscribe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSubscribe(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestExtractMAC(t *testing.T) {
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
		{"<sip:MAC%3a00135E874B49@224.0.1.75>;tag=1", "00135E874B49"},
		{`"Phone" <sip:MAC%3a00135E874B49@224.0.1.75>`, "00135E874B49"},
		{"sip:512@10.0.0.90", ""},
		{"<sip:512@10.0.0.90>;tag=dmrud", ""},
		{"sip:MAC%3a00135E874B4@x", ""},
		{"sip:MAC%3a00135E874B490@x", ""},
		{"sip:MAC%3a00135E874G49@x", ""},
		{"sip:MAC%3a00:13:5E:87:4B:49@x", ""},
		{"sip:00135E874B49", ""}, // no user part
		{"tel:00135E874B49@x", ""},
		{"sip:MAC%3@x", ""},
		{"", ""},
		{"<", ""},
	}
	for _, tt := range tests {
		m, ok := ExtractMAC(tt.in)
		got := ""
		if ok {
			got = m.String()
		}
		if got != tt.want {
			t.Errorf("ExtractMAC(%q) = %q, want %q", tt.in, got, tt.want)
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
		s, err := ParseSubscribe(data)
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

// Whatever SUBSCRIBE is accepted, the replies built from it must be SIP
// that another parser reads with the same Call-ID.
func FuzzReplies(f *testing.F) {
	for _, tr := range traces {
		f.Add(tr.Build("192.168.10.67"))
	}
	parser := sip.NewParser()
	local := netip.MustParseAddr("10.77.0.1")
	src := netip.MustParseAddrPort("192.168.10.67:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRequest(data)
		if err != nil || strings.ContainsAny(string(data), "\x00") {
			return
		}
		for _, raw := range [][]byte{
			build200(nil, &r, src, "tag1", local, 5060),
			buildNotify(nil, &r, src, "tag1", local, 5060, "z9hG4bKx", "http://10.77.0.1/"),
		} {
			msg, err := parser.ParseSIP(raw)
			if err != nil {
				// Values sipgo rejects came in from the phone verbatim; the
				// phone's own stack produced them, so that is not our bug,
				// but the start line and our own headers must be intact.
				if !bytes.HasPrefix(raw, []byte("SIP/2.0 200 OK\r\n")) && !bytes.HasPrefix(raw, []byte("NOTIFY ")) {
					t.Fatalf("bad start line: %q", raw)
				}
				return
			}
			if h := msg.CallID(); h == nil || h.Value() != strings.TrimSpace(r.callID) {
				t.Fatalf("Call-ID %v, want %q in\n%s", h, r.callID, raw)
			}
		}
	})
}

func FuzzExtractMAC(f *testing.F) {
	f.Add("sip:MAC%3a00135E874B49@intern.snom.de")
	f.Add("<sip:MAC=00304fa99948@224.0.1.75>;tag=1")
	f.Add("sip:512@10.0.0.90")
	f.Fuzz(func(t *testing.T, uri string) {
		m, ok := ExtractMAC(uri)
		if !ok {
			if !m.IsZero() {
				t.Fatalf("not ok but MAC set: %v", m)
			}
			return
		}
		// The digits must appear in the input, in some case.
		if !strings.Contains(strings.ToUpper(uri), m.String()) {
			t.Fatalf("MAC %s not in %q", m, uri)
		}
		if !strings.Contains(uri, "@") {
			t.Fatalf("MAC from a URI without a user part: %q", uri)
		}
	})
}
