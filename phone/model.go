package phone

import "strings"

// ValidModel reports whether s looks like a Snom phone type: "snom" followed by
// letters and digits (snomD785, snom720, snomM700). The same token is the DHCP
// vendor class, the PnP model= parameter and the HTTP file-name prefix.
func ValidModel(s string) bool {
	if len(s) < 5 || len(s) > 32 || !strings.HasPrefix(s, "snom") {
		return false
	}
	for i := 4; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ModelFromVendorClass maps a DHCP option 60 value to a phone type. Snom sends
// the bare type (snomD785); DECT bases may add a suffix after the type, so only
// the leading letters and digits are kept.
func ModelFromVendorClass(vc string) (string, bool) {
	if !strings.HasPrefix(strings.ToLower(vc), "snom") {
		return "", false
	}
	end := 4
	for end < len(vc) {
		c := vc[end]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			break
		}
		end++
	}
	m := "snom" + vc[4:end]
	if !ValidModel(m) {
		return "", false
	}
	return m, true
}
