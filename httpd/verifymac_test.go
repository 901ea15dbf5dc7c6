package httpd

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// TestVerifyMAC: a configured phone's own file and a device whose LAN MAC
// (here from a fake ARP lookup for 127.0.0.1) is another.
func TestVerifyMAC(t *testing.T) {
	other := mac("001122334455")
	tests := []struct {
		name      string
		method    string // default GET
		mode      string
		lan       phone.MAC // zero: the lookup does not know the address
		url, path string
		status    int
		warn      bool
	}{
		{name: "enforce, the phone itself", mode: VerifyEnforce, lan: mac(macA), path: "/snomD785-" + macA + ".htm", status: 200},
		{name: "enforce, another device", mode: VerifyEnforce, lan: other, path: "/snomD785-" + macA + ".htm", status: 404},
		{name: "enforce, HEAD from another device", method: "HEAD", mode: VerifyEnforce, lan: other, path: "/snomD785-" + macA + ".htm", status: 404},
		{name: "enforce, address not on the LAN", mode: VerifyEnforce, path: "/snomD785-" + macA + ".htm", status: 200},
		{name: "enforce, general file", mode: VerifyEnforce, lan: other, path: "/snomD785.htm", status: 200},
		{name: "enforce, {mac} URL", mode: VerifyEnforce, lan: other, url: "http://127.0.0.1/cfg/{mac}.xml", path: "/cfg/" + macA + ".xml", status: 404},
		{name: "log, another device", mode: VerifyLog, lan: other, path: "/snomD785-" + macA + ".htm", status: 200, warn: true},
		{name: "log, the phone itself", mode: VerifyLog, lan: mac(macA), path: "/snomD785-" + macA + ".htm", status: 200},
		{name: "off, another device", mode: VerifyOff, lan: other, path: "/snomD785-" + macA + ".htm", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.HTTP.URL = tt.url
			var asked []netip.Addr
			h := start(t, cfg, func(o *Options) {
				o.VerifyMAC = tt.mode
				o.LANMAC = func(ip netip.Addr) (phone.MAC, bool) {
					asked = append(asked, ip)
					return tt.lan, !tt.lan.IsZero()
				}
			})
			for i := 0; i < 2; i++ {
				method := tt.method
				if method == "" {
					method = "GET"
				}
				r := get(t, nil, method, h.url+tt.path)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d\n%s", r.status, tt.status, r.body)
				}
				if tt.status == 404 && method == "GET" && !strings.Contains(r.body, "verify_mac = enforce: 127.0.0.1 has MAC 001122334455 on the LAN, not 000413A11FA7") {
					t.Errorf("404 body does not say why: %q", r.body)
				}
				if tt.status == 200 && method == "GET" && strings.Contains(tt.path, macA) && !strings.Contains(r.body, "topsecret401") {
					t.Errorf("the phone's own file lacks its settings")
				}
			}
			warns := strings.Count(h.logs.String(), "fetched by a device with another MAC")
			if want := map[bool]int{true: 1, false: 0}[tt.warn]; warns != want {
				t.Errorf("%d warnings for two requests, want %d\n%s", warns, want, h.logs.String())
			}
			if tt.mode != VerifyOff && strings.Contains(tt.path, macA) && len(asked) == 0 {
				t.Error("the LAN MAC was never looked up")
			}
			if tt.mode == VerifyOff && len(asked) != 0 {
				t.Errorf("looked up %v with verify_mac = off", asked)
			}
		})
	}
}

func TestVerifyMACOption(t *testing.T) {
	cat, err := provision.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Listen: ":0", Catalog: cat, CleartextPhones: plainA, VerifyMAC: "strict"}, nil, nil); err == nil || !strings.Contains(err.Error(), `use one of "off", "log", "enforce"`) {
		t.Errorf("verify_mac = strict: %v", err)
	}
	// Every documented value is accepted.
	for _, v := range []string{VerifyOff, VerifyLog, VerifyEnforce} {
		if _, err := New(Options{Listen: ":0", Catalog: cat, CleartextPhones: plainA, VerifyMAC: v}, nil, nil); err != nil {
			t.Errorf("verify_mac = %s: %v", v, err)
		}
	}
}
