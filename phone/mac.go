// Package phone holds the small shared core every protocol package agrees on:
// a phone's MAC address, its model name and what its User-Agent says about it.
package phone

import (
	"errors"
	"fmt"
	"strings"
)

// MAC is a 48-bit hardware address. Its canonical text form is Snom's: twelve
// upper-case hex digits with no separators (000413A11FA7), the form phones put
// in file names and the {mac} placeholder.
type MAC [6]byte

// ErrBadMAC is wrapped by every MAC parse error.
var ErrBadMAC = errors.New("bad MAC address")

// ParseMAC accepts the spellings people and phones use: 000413A11FA7,
// 00:04:13:a1:1f:a7, 00-04-13-A1-1F-A7, 0004.13a1.1fa7, in any case.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	hex := make([]byte, 0, 12)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
			hex = append(hex, c)
		case c == ':' || c == '-' || c == '.':
			// separators are ignored, but only between digit groups
			if i == 0 || i == len(s)-1 {
				return m, fmt.Errorf("%w: %q", ErrBadMAC, s)
			}
		default:
			return m, fmt.Errorf("%w: %q has %q", ErrBadMAC, s, c)
		}
		if len(hex) > 12 {
			return m, fmt.Errorf("%w: %q is longer than 12 hex digits", ErrBadMAC, s)
		}
	}
	if len(hex) != 12 {
		return m, fmt.Errorf("%w: %q needs 12 hex digits", ErrBadMAC, s)
	}
	for i := range m {
		m[i] = unhex(hex[2*i])<<4 | unhex(hex[2*i+1])
	}
	return m, nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

const hexDigits = "0123456789ABCDEF"

// String returns the canonical form, 000413A11FA7.
func (m MAC) String() string {
	var b [12]byte
	return string(m.AppendTo(b[:0]))
}

// AppendTo appends the canonical form to b, as netip.Addr.AppendTo does.
func (m MAC) AppendTo(b []byte) []byte {
	for _, v := range m {
		b = append(b, hexDigits[v>>4], hexDigits[v&0xf])
	}
	return b
}

// Colon returns the lower-case colon form used by DHCP tools, 00:04:13:a1:1f:a7.
func (m MAC) Colon() string {
	return strings.ToLower(fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]))
}

// IsZero reports whether m is the zero address (unset).
func (m MAC) IsZero() bool { return m == MAC{} }

// Snom OUIs: 00:04:13 is snom technology, 00:08:7B is used in Snom DECT bases.
var snomOUIs = [][3]byte{{0x00, 0x04, 0x13}, {0x00, 0x08, 0x7B}}

// IsSnom reports whether the address belongs to one of Snom's OUIs.
func (m MAC) IsSnom() bool {
	for _, o := range snomOUIs {
		if m[0] == o[0] && m[1] == o[1] && m[2] == o[2] {
			return true
		}
	}
	return false
}

// MarshalText implements encoding.TextMarshaler (JSON, TOML).
func (m MAC) MarshalText() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC's rules.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// FromHardwareAddr converts a 6-byte net.HardwareAddr-like slice.
func FromHardwareAddr(b []byte) (MAC, bool) {
	var m MAC
	if len(b) != 6 {
		return m, false
	}
	copy(m[:], b)
	return m, true
}
