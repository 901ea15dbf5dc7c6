package dhcp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/internal/field"
)

func TestExtraOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		list []ExtraOption
		key  string // "" = valid
		want []byte // wire value of the first option when valid
	}{
		{"ipv4", []ExtraOption{{Code: 4, Type: "ipv4", Value: "10.0.0.1"}}, "", []byte{10, 0, 0, 1}},
		{"ipv4 list", []ExtraOption{{Code: 4, Type: "ipv4", Value: "10.0.0.1, 10.0.0.2"}}, "", []byte{10, 0, 0, 1, 10, 0, 0, 2}},
		{"string", []ExtraOption{{Code: 40, Type: "string", Value: "nis"}}, "", []byte("nis")},
		{"uint16", []ExtraOption{{Code: 26, Type: "uint16", Value: "1500"}}, "", []byte{0x05, 0xdc}},
		{"uint32", []ExtraOption{{Code: 35, Type: "uint32", Value: "60"}}, "", []byte{0, 0, 0, 60}},
		{"int32 negative", []ExtraOption{{Code: 200, Type: "int32", Value: "-1"}}, "", []byte{0xff, 0xff, 0xff, 0xff}},
		{"uint8", []ExtraOption{{Code: 23, Type: "uint8", Value: "64"}}, "", []byte{64}},
		{"bool", []ExtraOption{{Code: 19, Type: "bool", Value: "false"}}, "", []byte{0}},
		{"hex with colons", []ExtraOption{{Code: 224, Type: "hex", Value: "01:02:0a"}}, "", []byte{1, 2, 10}},
		{"bad address", []ExtraOption{{Code: 4, Type: "ipv4", Value: "10.0.0.1, ::1"}}, "options[0].value", nil},
		{"uint8 overflow", []ExtraOption{{Code: 23, Type: "uint8", Value: "256"}}, "options[0].value", nil},
		{"unknown type", []ExtraOption{{Code: 4, Type: "ipv4-address"}}, "options[0].type", nil},
		{"empty string", []ExtraOption{{Code: 40, Type: "string"}}, "options[0].value", nil},
		{"bad hex", []ExtraOption{{Code: 224, Type: "hex", Value: "0g"}}, "options[0].value", nil},
		{"bad bool", []ExtraOption{{Code: 19, Type: "bool", Value: "yes"}}, "options[0].value", nil},
		{"too long", []ExtraOption{{Code: 40, Type: "hex", Value: strings.Repeat("ab", 256)}}, "options[0].value", nil},
		{"code out of range", []ExtraOption{{Code: 256, Type: "uint8", Value: "1"}}, "options[0].code", nil},
		{"own key: router", []ExtraOption{{Code: 3, Type: "ipv4", Value: "10.0.0.1"}}, "options[0].code", nil},
		{"protocol: server identifier", []ExtraOption{{Code: 54, Type: "ipv4", Value: "10.0.0.1"}}, "options[0].code", nil},
		{"own key: option 66", []ExtraOption{{Code: 66, Type: "string", Value: "x"}}, "options[0].code", nil},
		{"duplicate code", []ExtraOption{{Code: 4, Type: "ipv4", Value: "10.0.0.1"}, {Code: 4, Type: "ipv4", Value: "10.0.0.2"}}, "options[1].code", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOptions(t.TempDir())
			o.ExtraOptions = tt.list
			p, err := Prepare(o)
			if tt.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				n := p.Options()
				if got := n.encoded[len(n.encoded)-1].value; string(got) != string(tt.want) {
					t.Errorf("encoded % x, want % x", got, tt.want)
				}
				return
			}
			var fe *field.Error
			if !errors.As(err, &fe) || fe.Key != tt.key {
				t.Fatalf("want a field error for %s, got %v", tt.key, err)
			}
		})
	}
	// The keys of protocol-owned options with their own key depend on them.
	o := baseOptions(t.TempDir())
	o.VendorOptions = true
	o.ExtraOptions = []ExtraOption{{Code: 43, Type: "hex", Value: "01"}}
	if _, err := Prepare(o); err == nil {
		t.Error("option 43 accepted beside vendor_options")
	}
}

func TestExtraOptionsSent(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.ExtraOptions = []ExtraOption{
			{Code: 4, Type: "ipv4", Value: "10.77.0.5"},
			{Code: 26, Type: "uint16", Value: "1400", Always: true},
		}
	})
	asks := dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(4))
	tests := []struct {
		name    string
		mods    []dhcpv4.Modifier
		want4   bool
		wantMTU bool
	}{
		{"not requested: only the always option", nil, false, true},
		{"requested in option 55", []dhcpv4.Modifier{asks}, true, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := ts.lease(fmt.Sprintf("02:00:00:00:09:%02x", i), tt.mods...)
			if got := ack.msg.Options.Get(dhcpv4.GenericOptionCode(4)); (got != nil) != tt.want4 || (got != nil && string(got) != "\x0a\x4d\x00\x05") {
				t.Errorf("option 4 = % x", got)
			}
			if got := ack.msg.Options.Get(dhcpv4.GenericOptionCode(26)); (got != nil) != tt.wantMTU || (got != nil && string(got) != "\x05\x78") {
				t.Errorf("option 26 = % x", got)
			}
		})
	}
}

func FuzzEncodeOptionValue(f *testing.F) {
	for _, s := range []string{"10.0.0.1, 10.0.0.2", "1500", "-1", "true", "01:02:0a", "x"} {
		for _, typ := range OptionTypes {
			f.Add(typ, s)
		}
	}
	f.Fuzz(func(t *testing.T, typ, v string) {
		b, err := encodeOptionValue(typ, v)
		if err == nil && len(b) == 0 {
			t.Errorf("%s %q encoded to nothing", typ, v)
		}
	})
}
