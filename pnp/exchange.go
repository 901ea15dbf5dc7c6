package pnp

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The exchange itself: the 200 OK and the NOTIFY are written straight from
// the parsed SUBSCRIBE's raw header values, and the NOTIFY is retransmitted
// by a timer per NOTIFY. Measured on the 2-core reference machine, going
// through sipgo's message model and transaction layer for this cost about
// three times the CPU of the minimal Python responder per exchange; this way
// costs less than it (see bench/results/pnp.md).

// RFC 3261 timers for the NOTIFY (a non-INVITE client transaction over UDP).
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

// build200 writes the 200 OK to a SUBSCRIBE (RFC 3261 8.2.6): every Via
// copied, the top one with received= and rport= filled in (RFC 3581), From,
// Call-ID and CSeq copied, our tag on To, our Contact, Expires: 0.
func build200(b []byte, r *request, src netip.AddrPort, toTag string, local netip.Addr, port int) []byte {
	b = append(b, "SIP/2.0 200 OK\r\n"...)
	for i, v := range r.vias {
		b = append(b, "Via: "...)
		if i == 0 {
			b = appendReceived(b, v, src)
		} else {
			b = append(b, v...)
		}
		b = append(b, "\r\n"...)
	}
	b = append(b, "From: "...)
	b = append(b, r.from...)
	b = append(b, "\r\nTo: "...)
	b = appendWithTag(b, r.to, toTag)
	b = append(b, "\r\nCall-ID: "...)
	b = append(b, r.callID...)
	b = append(b, "\r\nCSeq: "...)
	b = append(b, r.cseq...)
	b = append(b, "\r\nContact: "...)
	b = appendContact(b, local, port)
	b = append(b, "\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"...)
	return b
}

// buildNotify writes the NOTIFY that carries the URL, in the SUBSCRIBE's
// dialog (From and To swapped, our To-tag on From), with our own Via and a
// fresh branch so the phone's 200 comes back to us, the phone's Event
// echoed, and Subscription-State: terminated;reason=timeout.
func buildNotify(b []byte, r *request, src netip.AddrPort, toTag string, local netip.Addr, port int, branch, url string) []byte {
	b = append(b, "NOTIFY "...)
	if c := contactURI(r.contact); c != "" {
		b = append(b, c...)
	} else {
		b = append(b, "sip:"...)
		b = src.AppendTo(b)
	}
	b = append(b, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	b = local.AppendTo(b)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, ";branch="...)
	b = append(b, branch...)
	b = append(b, "\r\nMax-Forwards: 70\r\nFrom: "...)
	b = appendWithTag(b, r.to, toTag)
	b = append(b, "\r\nTo: "...)
	b = append(b, r.from...)
	b = append(b, "\r\nCall-ID: "...)
	b = append(b, r.callID...)
	b = append(b, "\r\nCSeq: 1 NOTIFY\r\nContact: "...)
	b = appendContact(b, local, port)
	b = append(b, "\r\nEvent: "...)
	b = append(b, r.Event...)
	b = append(b, "\r\nSubscription-State: terminated;reason=timeout\r\nContent-Type: application/url\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(url)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, url...)
	return b
}

func appendContact(b []byte, local netip.Addr, port int) []byte {
	b = append(b, "<sip:"...)
	b = local.AppendTo(b)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(port), 10)
	return append(b, '>')
}

// appendWithTag appends a From/To value, adding ;tag= unless it has one.
func appendWithTag(b []byte, v, tag string) []byte {
	b = append(b, v...)
	if _, ok := headerParam(v, "tag"); !ok {
		b = append(b, ";tag="...)
		b = append(b, tag...)
	}
	return b
}

// toTagOf returns the tag the SUBSCRIBE's To already carries (a refresh
// inside a dialog), if any.
func toTagOf(r *request) string {
	t, _ := headerParam(r.to, "tag")
	return t
}

// appendReceived appends the top Via with rport=<source port> when the phone
// asked for rport and received=<source ip>, as RFC 3581 and 3261 18.2.1 say.
func appendReceived(b []byte, via string, src netip.AddrPort) []byte {
	first, more, multi := strings.Cut(via, ",")
	sentBy, params, _ := strings.Cut(first, ";")
	b = append(b, strings.TrimSpace(sentBy)...)
	hasReceived := false
	for params != "" {
		var p string
		p, params = cutParam(params)
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		b = append(b, ';')
		k, _, hasValue := strings.Cut(p, "=")
		switch {
		case strings.EqualFold(k, "rport") && !hasValue:
			b = append(b, "rport="...)
			b = strconv.AppendInt(b, int64(src.Port()), 10)
		case strings.EqualFold(k, "received"):
			hasReceived = true
			b = append(b, p...)
		default:
			b = append(b, p...)
		}
	}
	if !hasReceived {
		b = append(b, ";received="...)
		b = src.Addr().AppendTo(b)
	}
	if multi {
		b = append(b, ',')
		b = append(b, more...)
	}
	return b
}

// replyDest is where replies go (RFC 3261 18.2.2, RFC 3581): the packet's
// source address, and its source port when the Via asks for rport or names
// no port, else the Via's port.
func replyDest(via string, src netip.AddrPort) netip.AddrPort {
	first, _, _ := strings.Cut(via, ",")
	if _, ok := headerParam(first, "rport"); ok {
		return src
	}
	sentBy, _, _ := strings.Cut(first, ";")
	fields := strings.Fields(sentBy) // "SIP/2.0/UDP" "host:port"
	if len(fields) < 2 {
		return src
	}
	hostport := fields[len(fields)-1]
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.HasSuffix(hostport, "]") {
		return src
	}
	port, err := strconv.Atoi(hostport[i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return src
	}
	return netip.AddrPortFrom(src.Addr(), uint16(port))
}

// contactURI takes the URI out of a Contact value: "<sip:512@10.0.0.90>" →
// "sip:512@10.0.0.90". Empty when there is none usable.
func contactURI(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			return ""
		}
		v = v[:j]
	} else {
		v, _, _ = strings.Cut(v, ";")
	}
	v = strings.TrimSpace(v)
	if len(v) < 5 || !strings.EqualFold(v[:4], "sip:") || strings.ContainsAny(v, " \r\n\t") {
		return ""
	}
	return v
}

// randomToken is a tag or branch suffix: unique enough, not a secret.
func randomToken() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// response is what we read from a phone's answer to our NOTIFY.
type response struct {
	code   int
	reason string
	branch string // top Via
	method string // CSeq
}

func parseResponse(data []byte) (response, bool) {
	var res response
	line, rest := cutLineBytes(data)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("SIP/2.0 ")) {
		return res, false
	}
	code, err := strconv.Atoi(string(line[8:11]))
	if err != nil || code < 100 || code > 699 {
		return res, false
	}
	res.code = code
	res.reason = strings.TrimSpace(string(line[11:]))
	for len(rest) > 0 && (res.branch == "" || res.method == "") {
		line, rest = cutLineBytes(rest)
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return res, false
		}
		name = bytes.TrimSpace(name)
		switch {
		case res.branch == "" && (bytes.EqualFold(name, []byte("Via")) || string(name) == "v"):
			first, _, _ := strings.Cut(string(value), ",")
			res.branch, _ = headerParam(first, "branch")
		case bytes.EqualFold(name, []byte("CSeq")):
			f := strings.Fields(string(value))
			if len(f) == 2 {
				res.method = f[1]
			}
		}
	}
	return res, res.branch != "" && res.method != ""
}
