package pnp

import (
	"bytes"
	"errors"
	"strings"

	"github.com/snomprov/snomprov/phone"
)

// Errors returned by ParseSubscribe. Every one of them means "stay silent".
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

// ParseSubscribe reads a raw datagram and returns the PnP SUBSCRIBE it
// carries. It is deliberately strict about what makes a PnP request (method,
// Event package, a MAC in the Request-URI or To) and lenient about everything
// else (header order and case, compact header names, LF line ends). It also
// insists on what a reply needs: Via, From, To, Call-ID and CSeq, and a From
// tag when the Via has no branch (the only way to tell retransmissions apart).
func ParseSubscribe(data []byte) (Subscribe, error) {
	r, err := parseRequest(data)
	return r.Subscribe, err
}

// request is a PnP SUBSCRIBE with the raw header values the replies copy.
type request struct {
	Subscribe
	uri                             string
	vias                            []string // in order; phones send one
	from, to, callID, cseq, contact string
	fromTag                         string
}

func parseRequest(data []byte) (request, error) {
	var r request
	line, rest := cutLineBytes(data)
	method, uriAndVersion, ok := bytes.Cut(line, []byte(" "))
	if !ok || string(method) != "SUBSCRIBE" {
		return r, ErrNotSubscribe
	}
	uri, version, ok := bytes.Cut(uriAndVersion, []byte(" "))
	if !ok || !bytes.EqualFold(bytes.TrimSpace(version), []byte("SIP/2.0")) {
		return r, ErrMalformed
	}
	r.uri = string(uri)
	var lower [24]byte
	for len(rest) > 0 {
		line, rest = cutLineBytes(rest)
		if len(line) == 0 {
			break // end of headers
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return r, ErrMalformed
		}
		name = bytes.TrimSpace(name)
		if len(name) > len(lower) {
			continue // no header we read is that long
		}
		for i, c := range name {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
		value = bytes.TrimSpace(value)
		switch string(lower[:len(name)]) {
		case "event", "o":
			if r.Event == "" {
				r.Event = string(value)
			}
		case "to", "t":
			r.to = string(value)
		case "from", "f":
			r.from = string(value)
		case "via", "v":
			r.vias = append(r.vias, string(value))
		case "call-id", "i":
			r.callID = string(value)
		case "cseq":
			r.cseq = string(value)
		case "contact", "m":
			r.contact = string(value)
		case "user-agent":
			r.UserAgent = string(value)
		}
	}
	if !parseEvent(r.Event, &r.Subscribe) {
		return r, ErrNotPnP
	}
	if len(r.vias) == 0 || r.callID == "" || r.cseq == "" || r.from == "" || r.to == "" {
		return r, ErrMalformed
	}
	r.fromTag, _ = headerParam(r.from, "tag")
	if _, ok := headerParam(r.vias[0], "branch"); !ok && r.fromTag == "" {
		return r, ErrMalformed
	}
	if m, ok := ExtractMAC(r.uri); ok {
		r.MAC = m
	} else if m, ok := ExtractMAC(r.to); ok {
		r.MAC = m
	} else {
		return r, ErrNoMAC
	}
	return r, nil
}

func cutLineBytes(b []byte) ([]byte, []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.TrimRight(b, "\r"), nil
	}
	return bytes.TrimRight(b[:i], "\r"), b[i+1:]
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

// cutParam splits off one ;-separated parameter, honouring quoted strings.
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

// headerParam finds a ;name=value parameter of a header value outside any
// <...> URI (so a URI parameter is not mistaken for a header parameter).
func headerParam(value, name string) (string, bool) {
	if i := strings.LastIndexByte(value, '>'); i >= 0 {
		value = value[i+1:]
	}
	_, params, _ := strings.Cut(value, ";")
	for params != "" {
		var p string
		p, params = cutParam(params)
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// ExtractMAC takes the MAC from the user part of a SIP URI, alone
// ("sip:MAC%3a00135E874B49@host") or inside a header value
// ("<sip:MAC%3a00135E874B49@host>;tag=1"). It accepts what the phones on the
// 224.0.1.75 scheme send: MAC%3a / MAC%3A (Snom, Grandstream), MAC: , MAC=
// (Planet), MAC directly followed by the digits (Yealink) and twelve bare hex
// digits, in any case. Anything else in the user part (sip:512@ip from an
// M700's From) is not a MAC.
func ExtractMAC(uri string) (phone.MAC, bool) {
	var none phone.MAC
	if i := strings.IndexByte(uri, '<'); i >= 0 {
		uri = uri[i+1:]
		if j := strings.IndexByte(uri, '>'); j >= 0 {
			uri = uri[:j]
		}
	}
	uri = strings.TrimSpace(uri)
	switch {
	case len(uri) >= 4 && strings.EqualFold(uri[:4], "sip:"):
		uri = uri[4:]
	case len(uri) >= 5 && strings.EqualFold(uri[:5], "sips:"):
		uri = uri[5:]
	default:
		return none, false
	}
	user, _, ok := strings.Cut(uri, "@")
	if !ok {
		return none, false
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
