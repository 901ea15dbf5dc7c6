package phone

import "strings"

// Identity is what a request tells us about the phone that sent it. Any field
// may be empty: old firmware sends no MAC, a browser sends nothing at all.
type Identity struct {
	MAC      MAC    `json:"mac"`
	Model    string `json:"model,omitempty"`    // snomD785
	Firmware string `json:"firmware,omitempty"` // 10.1.33.33
}

// ParseUserAgent reads the User-Agent forms Snom firmware is known to send:
//
//	Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 SXM:0 UXM:0)
//	Mozilla/4.0 (compatible; snom320-SIP 8.4.18 1.1.3-s)
//	Mozilla/4.0 (compatible; Snom M900 05.20.0001 000413b60680)      (DECT base)
//	snomD120/10.1.39.11                                              (SIP, newer firmware)
//	snomM700/03.23.0005 (MAC=000413******; SER= 00000; HW=255)       (SIP, DECT)
//
// ok is false when nothing Snom-like was found.
func ParseUserAgent(ua string) (id Identity, ok bool) {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	// Desk phone HTTP form: "snom<type>-SIP <version> ... [<MAC>]".
	if i := indexFold(ua, "snom"); i >= 0 {
		rest := ua[i:]
		if j := strings.Index(rest, "-SIP "); j > 4 && ValidModel("snom"+rest[4:j]) {
			id.Model = rest[:j]
			if !strings.HasPrefix(id.Model, "snom") {
				id.Model = "snom" + rest[4:j]
			}
			// Tokens after "-SIP ": the version first, the MAC somewhere
			// later. Scanned in place: this runs on every HTTP request.
			first := true
			for tail := rest[j+5:]; tail != ""; {
				var tok string
				tok, tail = nextToken(tail)
				if tok == "" {
					continue
				}
				if first && looksLikeVersion(tok) {
					id.Firmware = tok
				}
				first = false
				if m, err := parseMACToken(tok); err == nil {
					id.MAC = m
					break
				}
			}
			return id, true
		}
	}
	// DECT HTTP form: "Snom M900 05.20.0001 000413b60680".
	if i := indexFold(ua, "snom "); i >= 0 {
		fields := strings.Fields(strings.TrimRight(ua[i+5:], ")"))
		if len(fields) >= 2 && isDECTType(fields[0]) && looksLikeVersion(fields[1]) {
			id.Model = "snom" + fields[0]
			id.Firmware = fields[1]
			if len(fields) >= 3 {
				if m, err := parseMACToken(strings.TrimRight(fields[2], ");")); err == nil {
					id.MAC = m
				}
			}
			return id, true
		}
	}
	// SIP form: "snomD120/10.1.39.11" optionally followed by "(MAC=...; ...)".
	if strings.HasPrefix(ua, "snom") {
		if j := strings.IndexByte(ua, '/'); j > 4 && ValidModel(ua[:j]) {
			id.Model = ua[:j]
			v := ua[j+1:]
			if k := strings.IndexAny(v, " ;("); k >= 0 {
				v = v[:k]
			}
			if looksLikeVersion(v) {
				id.Firmware = v
			}
			if k := strings.Index(ua, "MAC="); k >= 0 {
				tok := ua[k+4:]
				if e := strings.IndexAny(tok, "; )"); e >= 0 {
					tok = tok[:e]
				}
				if m, err := parseMACToken(tok); err == nil {
					id.MAC = m
				}
			}
			return id, true
		}
	}
	return id, false
}

// parseMACToken accepts only a bare 12-hex-digit token, so that version strings
// and build ids are never mistaken for a MAC.
func parseMACToken(s string) (MAC, error) {
	if len(s) != 12 {
		return MAC{}, ErrBadMAC
	}
	return ParseMAC(s)
}

func looksLikeVersion(s string) bool {
	if s == "" || len(s) > 32 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

// indexFold is strings.Index ignoring ASCII case, without allocating. sub
// must be lower case; the exact lower-case spelling, the common one, is
// found with the fast strings.Index first.
func indexFold(s, sub string) int {
	if i := strings.Index(s, sub); i >= 0 {
		return i
	}
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], sub) {
			return i
		}
	}
	return -1
}

// isDECTType matches the DECT base names in the HTTP User-Agent: M followed by digits (M900).
func isDECTType(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != 'M' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// nextToken splits off the text up to the next space, ')' or ';'.
func nextToken(s string) (tok, rest string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ' ' || c == ')' || c == ';' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
