package pnp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/phone"
)

// Errors returned by parseSubscribe. Every one of them means "stay silent".
var (
	ErrNotSubscribe = errors.New("not a SUBSCRIBE request")
	ErrNotPnP       = errors.New("not a ua-profile device SUBSCRIBE")
	ErrNoMAC        = errors.New("no MAC address in Request-URI or To")
	ErrMalformed    = errors.New("malformed SIP message")
)

// Subscribe is what a PnP SUBSCRIBE tells us about the phone that sent it.
type Subscribe struct {
	MAC         phone.MAC
	Vendor      string // Event vendor=, quotes stripped: "snom", "OEM", "Yealink"
	EventModel  string // Event model= as sent: "snomD120", "OEM", "T21D"
	Version     string // Event version=: the firmware version
	ProfileType string // Event profile-type=: "device"
	UserAgent   string
	Event       string // the whole Event header value, echoed in the NOTIFY
}

// Model is the Snom phone type, from the Event model= or else the
// User-Agent; empty when neither names one (old firmware sends model="OEM").
func (s Subscribe) Model() string {
	if phone.ValidModel(s.EventModel) {
		return s.EventModel
	}
	if id, ok := phone.ParseUserAgent(s.UserAgent); ok {
		return id.Model
	}
	return ""
}

// Firmware is the firmware version from the Event version= or else the User-Agent.
func (s Subscribe) Firmware() string {
	if s.Version != "" {
		return s.Version
	}
	if id, ok := phone.ParseUserAgent(s.UserAgent); ok {
		return id.Firmware
	}
	return ""
}

// IsSnom reports whether the phone is a Snom: by OUI or by vendor="snom".
func (s Subscribe) IsSnom() bool {
	return s.MAC.IsSnom() || strings.EqualFold(s.Vendor, "snom")
}

// parseDatagram reads one datagram with sipgo's parser.
func parseDatagram(p *sip.Parser, data []byte) (sip.Message, error) {
	msg, err := p.ParseSIP(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return msg, nil
}

// parseSubscribe reads a datagram and returns the PnP SUBSCRIBE it carries,
// both as sipgo's request (which the replies are built from) and as what it
// says about the phone. It is strict about what makes a PnP request (method,
// Event package, a MAC in the Request-URI or To) and insists on what a reply
// needs: Via, From, To, Call-ID and CSeq, and a From tag when the Via has no
// branch (old Snoms send none; the tag is then the only way to tell
// retransmissions apart). The rest of the form is left to sipgo's parser,
// which takes header names in any case and their compact forms.
func parseSubscribe(p *sip.Parser, data []byte) (*sip.Request, Subscribe, error) {
	msg, err := parseDatagram(p, data)
	if err != nil {
		if len(data) < 10 || !strings.HasPrefix(string(data[:10]), "SUBSCRIBE ") {
			err = ErrNotSubscribe
		}
		return nil, Subscribe{}, err
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, Subscribe{}, ErrNotSubscribe
	}
	s, err := subscribeOf(req, data)
	return req, s, err
}

// subscribeOf checks a request sipgo parsed from data and reads the phone's
// identity. The method is matched case-sensitively, as RFC 3261 says, on
// the datagram itself (sipgo upper-cases it).
func subscribeOf(req *sip.Request, data []byte) (Subscribe, error) {
	var s Subscribe
	if req.Method != sip.SUBSCRIBE || !bytes.HasPrefix(data, []byte("SUBSCRIBE ")) {
		return s, ErrNotSubscribe
	}
	ev := req.GetHeader("event")
	if ev == nil {
		ev = req.GetHeader("o") // Event's compact form, which sipgo does not map
	}
	if ev == nil || !parseEvent(ev.Value(), &s) {
		return s, ErrNotPnP
	}
	s.Event = ev.Value()
	// sipgo's parser is lenient about form; the replies copy these headers,
	// so they must be what a SIP/2.0 UDP SUBSCRIBE carries.
	via, from, to, cseq := req.Via(), req.From(), req.To(), req.CSeq()
	if via == nil || from == nil || to == nil || req.CallID() == nil || cseq == nil ||
		!strings.EqualFold(req.SipVersion, "SIP/2.0") || cseq.MethodName != sip.SUBSCRIBE ||
		via.ProtocolName != "SIP" || via.ProtocolVersion != "2.0" || !strings.EqualFold(via.Transport, "UDP") || via.Host == "" ||
		!sipURI(&from.Address) || !sipURI(&to.Address) {
		return s, ErrMalformed
	}
	if !via.Params.Has("branch") && !from.Params.Has("tag") {
		return s, ErrMalformed
	}
	if ua := req.GetHeader("user-agent"); ua != nil {
		s.UserAgent = ua.Value()
	}
	if m, ok := macFromURI(&req.Recipient); ok {
		s.MAC = m
	} else if m, ok := macFromURI(&to.Address); ok {
		s.MAC = m
	} else {
		return s, ErrNoMAC
	}
	return s, nil
}

// parseEvent fills the Event parameters and reports whether the value is a
// ua-profile event for a device. A missing profile-type is accepted (lenient);
// any other profile-type ("application" from AudioCodes phones, which carry no
// MAC) is not ours.
func parseEvent(value string, s *Subscribe) bool {
	pkg, params, _ := strings.Cut(value, ";")
	if !strings.EqualFold(strings.TrimSpace(pkg), "ua-profile") {
		return false
	}
	for params != "" {
		var p string
		p, params = cutParam(params)
		k, v, _ := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		v = unquote(strings.TrimSpace(v))
		switch k {
		case "profile-type":
			s.ProfileType = v
		case "vendor":
			s.Vendor = v
		case "model":
			s.EventModel = v
		case "version":
			s.Version = v
		}
	}
	return s.ProfileType == "" || strings.EqualFold(s.ProfileType, "device")
}

// cutParam splits off one ;-separated parameter, honouring quoted strings
// (sipgo keeps the Event header as text: it is no RFC 3261 header).
func cutParam(s string) (param, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ';':
			if !quoted {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

func sipURI(u *sip.Uri) bool { return (u.Scheme == "sip" || u.Scheme == "sips") && u.Host != "" }

// macFromURI takes the MAC from the user part of a SIP URI as sipgo parsed
// it. It accepts what the phones on the 224.0.1.75 scheme send: MAC%3a /
// MAC%3A (Snom, Grandstream), MAC: (which sipgo reads as user "MAC" with a
// password), MAC= (Planet), MAC directly followed by the digits (Yealink)
// and twelve bare hex digits, in any case. Anything else in the user part
// (sip:512@ip from an M700's From) is not a MAC, and neither is a URI
// without a user part.
func macFromURI(u *sip.Uri) (phone.MAC, bool) {
	var none phone.MAC
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return none, false
	}
	user := u.User
	if u.Password != "" {
		user += ":" + u.Password
	}
	if len(user) >= 3 && strings.EqualFold(user[:3], "mac") {
		user = user[3:]
		switch {
		case len(user) >= 3 && strings.EqualFold(user[:3], "%3a"):
			user = user[3:]
		case len(user) >= 1 && (user[0] == ':' || user[0] == '='):
			user = user[1:]
		}
	}
	if len(user) != 12 {
		return none, false
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return none, false
		}
	}
	m, err := phone.ParseMAC(user)
	if err != nil {
		return none, false
	}
	return m, true
}
