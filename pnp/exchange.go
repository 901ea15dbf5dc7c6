package pnp

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The exchange: the 200 OK and the NOTIFY are sipgo messages built from the
// SUBSCRIBE sipgo parsed. The NOTIFY is retransmitted by a timer of our own
// per NOTIFY (RFC 3261 timer E), not by sipgo's client transaction: that
// transaction runs on sipgo's transport layer, which would have to own the
// socket and its read loop, so it could neither hand us the datagram's
// arrival interface (IP_PKTINFO) nor report a dying socket (its ServeUDP
// returns nil); and it costs a goroutine and a state machine per NOTIFY,
// where a flood needs the pending NOTIFYs counted and capped.

// RFC 3261 timers for the NOTIFY (a non-INVITE client transaction over UDP).
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

// build200 is the 200 OK to a SUBSCRIBE (RFC 3261 8.2.6): sipgo's response
// to the request (every Via copied, From, Call-ID and CSeq copied, rport
// filled in per RFC 3581), with received= on the top Via, toTag on To
// unless the SUBSCRIBE's To already had one, our Contact and Expires: 0.
func build200(req *sip.Request, src netip.AddrPort, toTag string, local netip.Addr, port int) *sip.Response {
	if to := req.To(); !to.Params.Has("tag") {
		to.Params.Add("tag", toTag) // copied into the response; the request is ours alone
	}
	req.SetSource(src.String())
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if via := res.Via(); via != nil && !via.Params.Has("received") {
		via.Params.Add("received", src.Addr().String())
	}
	res.AppendHeader(contact(local, port))
	res.AppendHeader(sip.NewHeader("Expires", "0"))
	return res
}

// buildNotify is the NOTIFY that carries the URL, in the SUBSCRIBE's dialog
// (From and To swapped, the 200's To-tag on From), to the phone's Contact
// (or its address when the Contact is no SIP URI), with our own Via and a
// fresh branch so the phone's 200 comes back to us, the phone's Event
// echoed, and Subscription-State: terminated;reason=timeout.
func buildNotify(req *sip.Request, ok *sip.Response, event string, src netip.AddrPort, local netip.Addr, port int, branch, url string) *sip.Request {
	target := sip.Uri{Scheme: "sip", Host: src.Addr().String(), Port: int(src.Port())}
	if c := req.Contact(); c != nil && sipURI(&c.Address) && token(c.Address.User) && token(c.Address.Host) && c.Address.Password == "" {
		// The Contact's user, host and port; its parameters are the phone's
		// business, and a phone that sends a bad one still gets its URL.
		target = sip.Uri{Scheme: c.Address.Scheme, User: c.Address.User, Host: c.Address.Host, Port: c.Address.Port}
	}
	n := sip.NewRequest(sip.NOTIFY, target)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: local.String(), Port: port, Params: sip.NewParams()}
	via.Params.Add("branch", branch)
	n.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	n.AppendHeader(&mf)
	from := ok.To().AsFrom()
	n.AppendHeader(&from)
	to := req.From().AsTo()
	n.AppendHeader(&to)
	n.AppendHeader(sip.HeaderClone(req.CallID()))
	n.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	n.AppendHeader(contact(local, port))
	n.AppendHeader(sip.NewHeader("Event", event))
	n.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason=timeout"))
	ct := sip.ContentTypeHeader("application/url")
	n.AppendHeader(&ct)
	n.SetBody([]byte(url))
	return n
}

// token reports whether s can stand in a URI as it is: no white space,
// control characters or delimiters of the header around it.
func token(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("<>\"", c) >= 0 {
			return false
		}
	}
	return true
}

func contact(local netip.Addr, port int) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: local.String(), Port: port}}
}

// replyDest is where replies go (RFC 3261 18.2.2, RFC 3581): the packet's
// source address, and its source port when the Via asks for rport or names
// no port, else the Via's port.
func replyDest(via *sip.ViaHeader, src netip.AddrPort) netip.AddrPort {
	if via.Params.Has("rport") || via.Port <= 0 || via.Port > 65535 {
		return src
	}
	return netip.AddrPortFrom(src.Addr(), uint16(via.Port))
}

// randomToken is a tag or branch suffix: unique enough, not a secret.
func randomToken() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// encode appends the wire form of m to b.
func encode(b *bytes.Buffer, m sip.Message) []byte {
	b.Reset()
	m.StringWrite(b)
	return b.Bytes()
}

// bufPool holds the buffers the 200 OKs are written into.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
