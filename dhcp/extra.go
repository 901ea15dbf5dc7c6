package dhcp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/internal/field"
)

// ExtraOption is one more option for OFFERs and ACKs, as dnsmasq's
// dhcp-option and Kea's option-data write it: a code, the type of its value
// and the value in text. It is sent when the client asks for it (option 55),
// or always when Always is set (dnsmasq's dhcp-option-force, Kea's
// always-send).
type ExtraOption struct {
	Code   int
	Type   string // one of OptionTypes
	Value  string
	Always bool
}

// OptionTypes are the value types of an ExtraOption, named as Kea names them
// (ipv4 is Kea's ipv4-address; a comma-separated list makes an array).
var OptionTypes = []string{"ipv4", "string", "uint8", "uint16", "uint32", "int8", "int16", "int32", "bool", "hex"}

// extraOption is an ExtraOption checked and encoded.
type extraOption struct {
	code  dhcpv4.OptionCode
	value []byte
	when  sendRule
}

// ownedCodes are the options the server sets itself: from another key, or
// because the protocol defines them. An extra option may not replace them.
var ownedCodes = map[int]string{
	0: "is the pad option", 255: "is the end option",
	1:  "is the subnet mask, taken from the interface",
	2:  "has its own key: time_offset",
	3:  "has its own key: router",
	6:  "has its own key: dns",
	12: "is the host name, set per reservation (hostname)",
	15: "has its own key: domain",
	42: "has its own key: ntp",
	50: "is part of the protocol (requested address)", 51: "has its own key: lease_time",
	52: "is part of the protocol (option overload)", 53: "is part of the protocol (message type)",
	54: "is part of the protocol (server identifier)", 55: "is part of the protocol (parameter request list)",
	56: "is part of the protocol (message)", 57: "is part of the protocol (maximum message size)",
	58: "has its own key: lease_time (T1 is half of it)", 59: "has its own key: lease_time (T2 is 7/8 of it)",
	60: "is sent by clients (vendor class)", 61: "is part of the protocol (client identifier)",
	66: "has its own key: update_server", 67: "has its own key: update_filename",
	82: "is the relay agent's (relay agent information)", 118: "is the relay agent's (subnet selection)",
}

// prepareExtraOptions checks and encodes list. Errors name the entry's key
// relative to [dhcp]: "options[2].value".
func prepareExtraOptions(list []ExtraOption, o *Options) ([]extraOption, field.Errors) {
	var errs field.Errors
	out := make([]extraOption, 0, len(list))
	seen := map[int]int{}
	for i, x := range list {
		key := func(k string) string { return field.Prefix(fmt.Sprintf("options[%d]", i), k) }
		switch why, owned := ownedCodes[x.Code]; {
		case x.Code < 0 || x.Code > 255:
			errs.Add(key("code"), "%d is not an option code (1-254)", x.Code)
			continue
		case owned:
			errs.Add(key("code"), "option %d %s", x.Code, why)
			continue
		case x.Code == 43 && o.VendorOptions:
			errs.Add(key("code"), "option 43 is built from update_server and voice_vlan while vendor_options = true")
			continue
		case (x.Code == 132 || x.Code == 133) && o.VoiceVLAN > 0:
			errs.Add(key("code"), "option %d has its own key while voice_vlan is set", x.Code)
			continue
		}
		if j, dup := seen[x.Code]; dup {
			errs.Add(key("code"), "option %d is already set by options[%d]", x.Code, j)
			continue
		}
		seen[x.Code] = i
		v, err := encodeOptionValue(x.Type, x.Value)
		if err != nil {
			k := "value"
			if errors.Is(err, errUnknownType) {
				k = "type"
			}
			errs.Add(key(k), "%v", err)
			continue
		}
		if len(v) > 255 {
			errs.Add(key("value"), "%d bytes do not fit one option (at most 255)", len(v))
			continue
		}
		when := sendRequested
		if x.Always {
			when = sendAlways
		}
		out = append(out, extraOption{code: dhcpv4.GenericOptionCode(x.Code), value: v, when: when})
	}
	return out, errs
}

// Wire is the option's value as it goes on the wire, for writing it into
// another server's configuration (router-config's Kea pair).
func (x ExtraOption) Wire() ([]byte, error) { return encodeOptionValue(x.Type, x.Value) }

var errUnknownType = errors.New(fmt.Sprintf("unknown type: use one of %s", strings.Join(OptionTypes, ", ")))

// encodeOptionValue turns the text of a value into its wire form (RFC 2132
// encodings: addresses as 4 bytes each, integers big-endian, bool one byte).
func encodeOptionValue(typ, v string) ([]byte, error) {
	intOf := func(bits int, signed bool) ([]byte, error) {
		var n uint64
		if signed {
			i, err := strconv.ParseInt(strings.TrimSpace(v), 0, bits)
			if err != nil {
				return nil, fmt.Errorf("%q is not an int%d", v, bits)
			}
			n = uint64(i)
		} else {
			u, err := strconv.ParseUint(strings.TrimSpace(v), 0, bits)
			if err != nil {
				return nil, fmt.Errorf("%q is not a uint%d", v, bits)
			}
			n = u
		}
		b := make([]byte, bits/8)
		for i := range b {
			b[len(b)-1-i] = byte(n >> (8 * i))
		}
		return b, nil
	}
	switch typ {
	case "ipv4":
		var b []byte
		for _, s := range strings.Split(v, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%q is not an IPv4 address (a list is written \"10.0.0.1, 10.0.0.2\")", strings.TrimSpace(s))
			}
			b = append(b, a.AsSlice()...)
		}
		return b, nil
	case "string":
		if v == "" {
			return nil, fmt.Errorf("is empty: an option carries at least one byte")
		}
		return []byte(v), nil
	case "uint8":
		return intOf(8, false)
	case "uint16":
		return intOf(16, false)
	case "uint32":
		return intOf(32, false)
	case "int8":
		return intOf(8, true)
	case "int16":
		return intOf(16, true)
	case "int32":
		return intOf(32, true)
	case "bool":
		switch v {
		case "true":
			return []byte{1}, nil
		case "false":
			return []byte{0}, nil
		}
		return nil, fmt.Errorf("%q is not true or false", v)
	case "hex":
		h := strings.NewReplacer(":", "", " ", "").Replace(v)
		b, err := hex.DecodeString(h)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%q is not hex bytes (like \"01:02:0a\" or \"01020a\")", v)
		}
		return b, nil
	}
	return nil, errUnknownType
}
