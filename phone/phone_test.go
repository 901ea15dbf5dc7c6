package phone

import (
	"errors"
	"testing"
)

func TestParseMAC(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"000413A11FA7", "000413A11FA7", false},
		{"000413a11fa7", "000413A11FA7", false},
		{"00:04:13:a1:1f:a7", "000413A11FA7", false},
		{"00-04-13-A1-1F-A7", "000413A11FA7", false},
		{"0004.13a1.1fa7", "000413A11FA7", false},
		{"", "", true},
		{"000413A11FA", "", true},
		{"000413A11FA7F", "", true},
		{"00:04:13:a1:1f:g7", "", true},
		{":000413A11FA7", "", true},
		{"000413A11FA7:", "", true},
		{"0004 13A11FA7", "", true},
	}
	for _, tt := range tests {
		m, err := ParseMAC(tt.in)
		if tt.err {
			if err == nil || !errors.Is(err, ErrBadMAC) {
				t.Errorf("ParseMAC(%q) = %v, %v; want ErrBadMAC", tt.in, m, err)
			}
			continue
		}
		if err != nil || m.String() != tt.want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %s", tt.in, m, err, tt.want)
		}
	}
}

func TestMACForms(t *testing.T) {
	m, _ := ParseMAC("000413A11FA7")
	if got := m.Colon(); got != "00:04:13:a1:1f:a7" {
		t.Errorf("Colon = %q", got)
	}
	if !m.IsSnom() {
		t.Error("000413 should be Snom")
	}
	rtx, _ := ParseMAC("00087B000001")
	if !rtx.IsSnom() {
		t.Error("00087B should be Snom")
	}
	other, _ := ParseMAC("02:77:ff:00:00:01")
	if other.IsSnom() {
		t.Error("02:77:ff is not Snom")
	}
}

func TestParseUserAgent(t *testing.T) {
	tests := []struct {
		ua             string
		model, fw, mac string
		ok             bool
	}{
		{"Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 SXM:0 UXM:0)", "snomD785", "10.1.33.33", "000413922D24", true},
		{"Mozilla/4.0 (compatible; snom710-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413741767)", "snom710", "8.7.5.35", "000413741767", true},
		{"Mozilla/4.0 (compatible; snom320-SIP 8.4.18 1.1.3-s)", "snom320", "8.4.18", "", true},
		{"Mozilla/4.0 (compatible; snom320-SIP 6.5.20; snom320 jffs2 v3.36; snom320 linux 3.38)", "snom320", "6.5.20", "", true},
		{"Mozilla/4.0 (compatible; snom870-SIP 8.4.35 SPEAr300 SNOM 1.4)", "snom870", "8.4.35", "", true},
		{"Mozilla/4.0 (compatible; Snom M900 05.20.0001 000413b60680)", "snomM900", "05.20.0001", "000413B60680", true},
		{"snomD120/10.1.39.11", "snomD120", "10.1.39.11", "", true},
		{"snomM700/03.23.0005 (MAC=000413123456; SER= 00000; HW=255)", "snomM700", "03.23.0005", "000413123456", true},
		{"Mozilla/4.0 (compatible; snom lid 3605)", "", "", "", false},
		{"curl/8.0", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tt := range tests {
		id, ok := ParseUserAgent(tt.ua)
		if ok != tt.ok || id.Model != tt.model || id.Firmware != tt.fw {
			t.Errorf("ParseUserAgent(%q) = %+v, %v", tt.ua, id, ok)
			continue
		}
		gotMAC := ""
		if !id.MAC.IsZero() {
			gotMAC = id.MAC.String()
		}
		if gotMAC != tt.mac {
			t.Errorf("ParseUserAgent(%q) MAC = %q, want %q", tt.ua, gotMAC, tt.mac)
		}
	}
}

func TestModelFromVendorClass(t *testing.T) {
	for in, want := range map[string]string{"snomD785": "snomD785", "snomM900-x": "snomM900", "SNOMd785": "snomd785", "MSFT 5.0": "", "snom": ""} {
		got, ok := ModelFromVendorClass(in)
		if got != want || ok != (want != "") {
			t.Errorf("ModelFromVendorClass(%q) = %q, %v", in, got, ok)
		}
	}
}

func FuzzParseUserAgent(f *testing.F) {
	f.Add("Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 SXM:0 UXM:0)")
	f.Add("Mozilla/4.0 (compatible; Snom M900 05.20.0001 000413b60680)")
	f.Add("snomM700/03.23.0005 (MAC=000413123456; SER= 00000; HW=255)")
	f.Fuzz(func(t *testing.T, ua string) {
		id, ok := ParseUserAgent(ua)
		if !ok && (id.Model != "" || id.Firmware != "" || !id.MAC.IsZero()) {
			t.Fatalf("not ok but fields set: %+v", id)
		}
		if ok && !ValidModel(id.Model) {
			t.Fatalf("invalid model %q", id.Model)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	f.Add("00:04:13:a1:1f:a7")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		again, err := ParseMAC(m.String())
		if err != nil || again != m {
			t.Fatalf("round trip of %q failed: %v %v", s, again, err)
		}
	})
}

func BenchmarkParseUserAgent(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ParseUserAgent("Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413922D24 SXM:0 UXM:0)")
	}
}
