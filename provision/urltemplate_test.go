package provision

import (
	"strings"
	"testing"

	"github.com/snomprov/snomprov/phone"
)

func TestParseURLTemplate(t *testing.T) {
	tests := []struct {
		raw                        string
		base, dir, path, macPath   string
		hasMAC                     bool
		queryKey, queryPlaceholder string
	}{
		{"http://10.0.0.1", "http://10.0.0.1", "/", "", "", false, "", ""},
		{"http://10.0.0.1:8080/", "http://10.0.0.1:8080", "/", "", "", false, "", ""},
		{"http://host/prov/office.xml", "http://host", "/prov/", "/prov/office.xml", "/prov/office-{mac}.xml", false, "", ""},
		{"https://u:p@host/test", "https://u:p@host", "/", "/test", "/test-{mac}", false, "", ""},
		{"http://host/cfg/{phone_type}/{mac}.xml", "http://host", "/", "/cfg/{phone_type}/{mac}.xml", "", true, "", ""},
		{"http://host/index.php?mac={mac}", "http://host", "/", "/index.php", "", true, "mac", "{mac}"},
	}
	for _, tt := range tests {
		got, err := ParseURLTemplate(tt.raw)
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if got.Base != tt.base || got.Dir != tt.dir || got.Path != tt.path || got.MACPath != tt.macPath || got.HasMAC != tt.hasMAC {
			t.Errorf("%s: got %+v", tt.raw, got)
		}
		if tt.queryKey != "" && got.Query[tt.queryKey] != tt.queryPlaceholder {
			t.Errorf("%s: query %v", tt.raw, got.Query)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, path string
		ok            bool
		mac, model    string
		fw            string
	}{
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/000413A11FA7.xml", true, "000413A11FA7", "snomD785", ""},
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/000413a11fa7.xml", true, "000413A11FA7", "snomD785", ""},
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/00:04:13:a1:1f:a7.xml", true, "000413A11FA7", "snomD785", ""},
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/D785/000413A11FA7.xml", false, "", "", ""},
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/000413A11FA.xml", false, "", "", ""},
		{"/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/000413A11FA7.xml/x", false, "", "", ""},
		{"/{phone_type}-{mac}.htm", "/snomD785-000413A11FA7.htm", true, "000413A11FA7", "snomD785", ""},
		{"/{phone_type}-{firmware_version}/{mac}", "/snomD120-10.1.47/000413A11FA7", true, "000413A11FA7", "snomD120", "10.1.47"},
		{"/prov/office-{mac}.xml", "/prov/office-000413A11FA7.xml", true, "000413A11FA7", "", ""},
		{"/prov/office-{mac}.xml", "/prov/office.xml", false, "", "", ""},
		{"/{mac}/{mac}.xml", "/000413A11FA7/000413A11FA8.xml", false, "", "", ""},
		{"/a{b}/{mac}", "/a{b}/000413A11FA7", true, "000413A11FA7", "", ""},
		{"/plain.xml", "/plain.xml", true, "", "", ""},
	}
	for _, tt := range tests {
		v, ok := Match(tt.pattern, tt.path)
		if ok != tt.ok {
			t.Errorf("Match(%q, %q) ok = %v", tt.pattern, tt.path, ok)
			continue
		}
		if !ok {
			continue
		}
		mac := ""
		if v.HasMAC {
			mac = v.MAC.String()
		}
		if mac != tt.mac || v.Model != tt.model || v.Firmware != tt.fw {
			t.Errorf("Match(%q, %q) = %+v", tt.pattern, tt.path, v)
		}
	}
}

// BenchmarkMatchHostile: long runs of placeholder characters must not make
// matching slow (values are length-bounded, so backtracking stays small).
func BenchmarkMatchHostile(b *testing.B) {
	path := "/cfg/snom" + strings.Repeat("a", 8000) + "-" + strings.Repeat("0", 8000) + ".xml"
	for i := 0; i < b.N; i++ {
		if _, ok := Match("/cfg/{phone_type}-{mac}.xml", path); ok {
			b.Fatal("matched")
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/cfg/{phone_type}/{mac}.xml", "/cfg/snomD785/000413A11FA7.xml")
	f.Add("/{phone_type}-{firmware_version}/{mac}", "/snomD120-10.1.47/000413A11FA7")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		v, ok := Match(pattern, path)
		if !ok {
			return
		}
		if v.Model != "" && !phone.ValidModel(v.Model) {
			t.Fatalf("invalid model %q", v.Model)
		}
		if v.HasMAC != strings.Contains(pattern, PlaceholderMAC) {
			t.Fatalf("HasMAC = %v for pattern %q", v.HasMAC, pattern)
		}
		// The phone's own substitution of the matched values must match too.
		if _, ok := Match(pattern, Expand(pattern, v)); !ok {
			t.Fatalf("re-match of %q against %q failed (%+v)", Expand(pattern, v), pattern, v)
		}
	})
}
