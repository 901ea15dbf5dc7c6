package simulate

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/ipv4"

	"github.com/snomprov/snomprov/internal/probe"
)

// PnPGroup is the SIP multicast group Snom phones send their SUBSCRIBE to.
var PnPGroup = netip.MustParseAddrPort("224.0.1.75:5060")

// PnPAnswer is what one PnP responder (keyed by IP) sent back.
type PnPAnswer struct {
	Responder   netip.Addr     `json:"responder"`
	Status      int            `json:"status,omitempty"` // final response to the SUBSCRIBE; 0 if none
	Reason      string         `json:"reason,omitempty"`
	NotifyFrom  netip.AddrPort `json:"notify_from,omitzero"`
	ContentType string         `json:"content_type,omitempty"`
	URL         string         `json:"url,omitempty"` // NOTIFY body
	Acked       bool           `json:"acked"`         // we answered the NOTIFY with 200
	Warnings    []string       `json:"warnings,omitempty"`
	Elapsed     time.Duration  `json:"elapsed"` // SUBSCRIBE sent → URL received
}

// PnPProbe configures ProbePnP.
type PnPProbe struct {
	Interface *net.Interface // multicast goes out of this interface only
	Source    netip.Addr     // an IPv4 address of Interface
	Phone     Identity
	Wait      time.Duration // how long to listen for answers
	// UntilFirstURL stops at the first NOTIFY with a URL (a phone takes
	// the first one); otherwise answers are collected for all of Wait.
	UntilFirstURL bool
}

// ProbePnP multicasts one Snom SUBSCRIBE (retransmitted on timer E until a
// responder answers), answers every NOTIFY with 200 OK, and returns what
// each responder sent, sorted by responder IP.
func ProbePnP(ctx context.Context, p PnPProbe) ([]PnPAnswer, error) {
	conn, err := listenPhoneSIP(p.Source)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn)
	// TTL 1 keeps the SUBSCRIBE on the LAN segment, like a phone's;
	// loopback lets a responder on this very host hear it.
	if err := pc.SetMulticastInterface(p.Interface); err != nil {
		return nil, fmt.Errorf("select %s for multicast: %w; check that the interface is up", p.Interface.Name, err)
	}
	if err := pc.SetMulticastTTL(1); err != nil {
		return nil, fmt.Errorf("set multicast TTL: %w", err)
	}
	if err := pc.SetMulticastLoopback(true); err != nil {
		return nil, fmt.Errorf("set multicast loopback: %w", err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	sub := newSubscribe(p.Phone, local)
	group := net.UDPAddrFromAddrPort(PnPGroup)

	ctx, cancel := context.WithTimeout(ctx, p.Wait)
	defer cancel()
	start := time.Now()
	answers := map[netip.Addr]*PnPAnswer{}
	answerFor := func(ip netip.Addr) *PnPAnswer {
		a := answers[ip]
		if a == nil {
			a = &PnPAnswer{Responder: ip}
			answers[ip] = a
		}
		return a
	}
	if _, err := conn.WriteToUDP(sub.bytes, group); err != nil {
		return nil, fmt.Errorf("send SUBSCRIBE to %s on %s: %w; check that %s has a multicast route (ip route add 224.0.0.0/4 dev %s)", PnPGroup, p.Interface.Name, err, p.Interface.Name, p.Interface.Name)
	}
	interval := timerT1
	answered := false
	resend := func() time.Time { // timer E, until the first answer
		if answered {
			return time.Time{}
		}
		_, _ = conn.WriteToUDP(sub.bytes, group)
		interval = min(2*interval, timerT2)
		return time.Now().Add(interval)
	}
	dl, _ := ctx.Deadline()
	err = probe.Collect(ctx, conn, probe.Fixed(dl), time.Now().Add(timerT1), resend, func(b []byte, addr net.Addr) bool {
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			return false
		}
		from := ua.AddrPort()
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		msg, err := sip.ParseMessage(append([]byte(nil), b...))
		if err != nil {
			return false
		}
		switch m := msg.(type) {
		case *sip.Response:
			if m.CallID() == nil || m.CallID().Value() != sub.callID {
				return false
			}
			a := answerFor(from.Addr())
			if m.StatusCode >= 200 && a.Status == 0 {
				a.Status, a.Reason = m.StatusCode, m.Reason
				answered = true
			}
		case *sip.Request:
			if m.Method != sip.NOTIFY {
				return false
			}
			a := answerFor(from.Addr())
			answered = true
			to, warn := notifyReplyAddr(m, from)
			if warn != "" {
				a.Warnings = appendOnce(a.Warnings, warn)
			}
			if _, err := conn.WriteToUDP([]byte(okFor(m)), net.UDPAddrFromAddrPort(to)); err == nil {
				a.Acked = true
			}
			if a.URL != "" {
				return false // a retransmitted NOTIFY: answered again above, nothing new
			}
			a.NotifyFrom = from
			url, ct, warns := readNotify(m, sub.callID)
			a.ContentType = ct
			for _, w := range warns {
				a.Warnings = appendOnce(a.Warnings, w)
			}
			a.URL = url
			a.Elapsed = time.Since(start)
			if url != "" && p.UntilFirstURL {
				return true
			}
		}
		return false
	})
	if err != nil {
		return sorted(answers), fmt.Errorf("receive PnP answers: %w", err)
	}
	return sorted(answers), nil
}

// Timer E (RFC 3261 §17.1.2.2), used for the SUBSCRIBE.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

func appendOnce(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

func sorted(m map[netip.Addr]*PnPAnswer) []PnPAnswer {
	out := make([]PnPAnswer, 0, len(m))
	for _, a := range m {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Responder.Less(out[j].Responder) })
	return out
}

// listenPhoneSIP binds the phone's SIP socket: port 5060 like a real phone
// when free (it is not when snomprov runs on this host), else an
// ephemeral port; the Via and Contact name whichever was bound.
func listenPhoneSIP(src netip.Addr) (*net.UDPConn, error) {
	ip := net.IP(src.AsSlice())
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: 5060}); err == nil {
		return c, nil
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, fmt.Errorf("open a SIP socket on %s: %w", src, err)
	}
	return c, nil
}

type subscribe struct {
	callID string
	bytes  []byte
}

// newSubscribe writes the SUBSCRIBE exactly like a Snom D-series phone
// (snom-provisioning.md §1.2): no Via branch, Expires 0, Accept
// application/url, MAC in the Request-URI as MAC%3a<12 hex>.
func newSubscribe(id Identity, local netip.AddrPort) subscribe {
	uri := "sip:MAC%3a" + id.MAC.String() + "@intern.snom.de"
	callID := randomDigits(10) + "@" + local.Addr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "SUBSCRIBE %s SIP/2.0\r\n", uri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;rport\r\n", local)
	fmt.Fprintf(&b, "From: <%s>;tag=%s\r\n", uri, randomDigits(9))
	fmt.Fprintf(&b, "To: <%s>\r\n", uri)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	b.WriteString("CSeq: 1 SUBSCRIBE\r\n")
	fmt.Fprintf(&b, "Event: ua-profile;profile-type=\"device\";vendor=\"snom\";model=\"%s\";version=\"%s\"\r\n", id.Model, id.Firmware)
	b.WriteString("Expires: 0\r\n")
	b.WriteString("Accept: application/url\r\n")
	fmt.Fprintf(&b, "Contact: <sip:%s>\r\n", local)
	fmt.Fprintf(&b, "User-Agent: %s/%s\r\n", id.Model, id.Firmware)
	b.WriteString("Content-Length: 0\r\n\r\n")
	return subscribe{callID: callID, bytes: []byte(b.String())}
}

// readNotify checks a PnP NOTIFY the way a phone would use it and returns
// its URL. Oddities that a phone tolerates become warnings.
func readNotify(m *sip.Request, callID string) (url, contentType string, warnings []string) {
	if h := m.ContentType(); h != nil {
		contentType = h.Value()
	}
	if !strings.EqualFold(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]), "application/url") {
		warnings = append(warnings, fmt.Sprintf("NOTIFY Content-Type is %q, not application/url", contentType))
	}
	if m.CallID() == nil || m.CallID().Value() != callID {
		warnings = append(warnings, "NOTIFY Call-ID differs from the SUBSCRIBE's")
	}
	if ev := m.GetHeader("Event"); ev == nil || !strings.HasPrefix(strings.TrimSpace(ev.Value()), "ua-profile") {
		warnings = append(warnings, "NOTIFY has no Event: ua-profile")
	}
	body := strings.TrimSpace(string(m.Body()))
	if i := strings.IndexAny(body, "\r\n"); i >= 0 {
		warnings = append(warnings, "NOTIFY body has more than one line; the first is used")
		body = strings.TrimSpace(body[:i])
	}
	if body == "" {
		warnings = append(warnings, "NOTIFY body is empty: no setting URL")
		return "", contentType, warnings
	}
	if !hasScheme(body) {
		warnings = append(warnings, fmt.Sprintf("NOTIFY body %q is not an absolute URL", body))
		return "", contentType, warnings
	}
	return body, contentType, warnings
}

// notifyReplyAddr is where a phone sends its 200 to a NOTIFY: the top Via's
// sent-by, or the packet's source when the Via asks for rport (RFC 3581).
// A Via naming 0.0.0.0 or a multicast address cannot be answered, so the
// source is used and a warning says the responder will miss the 200.
func notifyReplyAddr(m *sip.Request, src netip.AddrPort) (netip.AddrPort, string) {
	via := m.Via()
	if via == nil {
		return src, "NOTIFY has no Via; answered to its source address"
	}
	if via.Params.Has("rport") {
		return src, ""
	}
	ip, err := netip.ParseAddr(via.Host)
	if err != nil || ip.IsUnspecified() || ip.IsMulticast() {
		return src, fmt.Sprintf("NOTIFY Via sent-by %q cannot be answered; a real phone's 200 OK would go astray and the responder will retransmit", via.Host)
	}
	port := via.Port
	if port == 0 {
		port = 5060
	}
	return netip.AddrPortFrom(ip, uint16(port)), ""
}

// okFor builds the phone's 200 OK to a NOTIFY.
func okFor(m *sip.Request) string {
	res := sip.NewResponseFromRequest(m, 200, "OK", nil)
	return res.String()
}

func randomDigits(n int) string {
	var b strings.Builder
	for range n {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		b.WriteByte(byte('0' + d.Int64()))
	}
	s := b.String()
	if s[0] == '0' {
		s = "1" + s[1:]
	}
	return s
}
