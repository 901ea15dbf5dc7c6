package phone

import (
	"strings"
	"testing"
)

func TestImageNames(t *testing.T) {
	for _, c := range []struct{ in, version, model string }{
		{"snomD785-10.1.215.13-SIP-r.bin", "10.1.215.13", "snomD785"},
		{"http://h/fw/snomD865-10.1.180.0-r.swu?x=1#y", "10.1.180.0", "snomD865"},
		{"/firmware/sub/snomD717_10.1.73.4_r.bin", "10.1.73.4", ""},
		{"firmware.bin", "", ""},
		{"snomD785-.1.-SIP.bin", "", "snomD785"},
		{"", "", ""},
	} {
		if v := ImageVersion(c.in); v != c.version {
			t.Errorf("ImageVersion(%q) = %q, want %q", c.in, v, c.version)
		}
		if m := ImageModel(c.in); m != c.model {
			t.Errorf("ImageModel(%q) = %q, want %q", c.in, m, c.model)
		}
	}
}

func FuzzImageName(f *testing.F) {
	f.Add("snomD785-10.1.215.13-SIP-r.bin")
	f.Add("https://h/a/snomD865-10.1.180.0-r.swu?x=1#y")
	f.Add("-.-_..1.-")
	f.Fuzz(func(t *testing.T, name string) {
		v, m, base := ImageVersion(name), ImageModel(name), ImageName(name)
		if strings.ContainsAny(base, "/?#") {
			t.Fatalf("ImageName(%q) = %q", name, base)
		}
		if v != "" && (!strings.Contains(base, v) || strings.Trim(v, "0123456789.") != "" || !strings.Contains(v, ".")) {
			t.Fatalf("ImageVersion(%q) = %q", name, v)
		}
		if m != "" && (!ValidModel(m) || !strings.HasPrefix(base, m)) {
			t.Fatalf("ImageModel(%q) = %q", name, m)
		}
	})
}
