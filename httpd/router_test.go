package httpd

import (
	"strings"
	"testing"

	"github.com/snomprov/snomprov/provision"
)

func TestRoute(t *testing.T) {
	named, _ := provision.ParseURLTemplate("http://host/prov/office.xml")
	placeholder, _ := provision.ParseURLTemplate("http://host/cfg/{phone_type}/{mac}.xml")
	query, _ := provision.ParseURLTemplate("http://host/prov.php?mac={mac}")
	tests := []struct {
		path   string
		tpl    *provision.URLTemplate
		kind   RouteKind
		model  string
		mac    string
		name   string
		reason string // substring; "" = no reason
	}{
		{"/snomD345.htm", nil, RouteGeneral, "snomD345", "", "", ""},
		{"/snomprov/snomD785.xml", nil, RoutePart, "snomD785", "", "snomD785.xml", ""},
		{"/snomprov/snomD785-gui-languages.xml", nil, RoutePart, "snomD785", "", "snomD785-gui-languages.xml", ""},
		{"/snomprov/000413A11FA7.xml", nil, RoutePart, "", "000413A11FA7", "000413A11FA7.xml", ""},
		{"/snomprov/generic-000413A11FA7-web-languages.xml", nil, RoutePart, "", "000413A11FA7", "generic-000413A11FA7-web-languages.xml", ""},
		{"/snomprov/../etc/passwd", nil, RouteReject, "", "", "", "traversal"},
		{"/snomprov/snomD785.htm", nil, RouteOther, "", "", "", "not a document"},
		{"/snomprov/0004-13.xml", nil, RouteOther, "", "", "", "not a document"},
		{"/snomD345-000413A11FA7.htm", nil, RoutePhone, "snomD345", "000413A11FA7", "", ""},
		{"/snomD345-000413a11fa7.htm", nil, RoutePhone, "snomD345", "000413A11FA7", "", ""},
		{"/snomD345-00:04:13:a1:1f:a7.htm", nil, RoutePhone, "snomD345", "000413A11FA7", "", ""},
		{"//snomD345.htm", nil, RouteGeneral, "snomD345", "", "", ""},
		{"/snomD765-firmware.htm", nil, RouteFirmwareFile, "snomD765", "", "", ""},
		{"/snomD765/snomD765-firmware.htm", nil, RouteFirmwareFile, "snomD765", "", "", ""},
		{"/snomD765/snomD785-firmware.htm", nil, RouteOther, "", "", "", "directory must be"},
		{"/prov/snomD765/snomD765-firmware.htm", &named, RouteFirmwareFile, "snomD765", "", "", ""},
		{"/prov/snomD765-firmware.htm", &named, RouteFirmwareFile, "snomD765", "", "", ""},
		{"/prov/office.xml", &named, RouteGeneral, "", "", "", ""},
		{"/prov/office-000413A11FA7.xml", &named, RoutePhone, "", "000413A11FA7", "", ""},
		{"/prov/office-000413A11FA.xml", &named, RouteOther, "", "", "", "shape of http.url"},
		{"/cfg/snomD785/0004.xml", &placeholder, RouteOther, "", "", "", "shape of http.url"},
		{"/cfg/x.xml", &placeholder, RouteOther, "", "", "", ""},
		{"/prov/snomD345.htm", &named, RouteGeneral, "snomD345", "", "", ""},
		{"/other/snomD345.htm", &named, RouteOther, "snomD345", "", "", "directory must be"},
		{"/cfg/snomD785/000413A11FA7.xml", &placeholder, RouteCombined, "snomD785", "000413A11FA7", "", ""},
		{"/cfg/snomD785/000413a11fa7.xml", &placeholder, RouteCombined, "snomD785", "000413A11FA7", "", ""},
		{"/prov.php", &query, RouteCombined, "", "", "", ""},
		{"/firmware/snomD785-10.1-SIP-r.bin", nil, RouteFirmwareImage, "", "", "snomD785-10.1-SIP-r.bin", ""},
		{"/firmware/sub/x.bin", nil, RouteFirmwareImage, "", "", "sub/x.bin", ""},
		{"/firmware/", nil, RouteReject, "", "", "", "not listed"},
		{"/firmware/../etc/passwd", nil, RouteReject, "", "", "", "traversal"},
		{"/firmware//etc/passwd", nil, RouteFirmwareImage, "", "", "etc/passwd", ""},
		{"/../snomD345.htm", nil, RouteReject, "", "", "", "traversal"},
		{"/a/./b", nil, RouteReject, "", "", "", "traversal"},
		{"/firmware/a\\..\\b", nil, RouteReject, "", "", "", "backslash"},
		{"/firmware/a\x00", nil, RouteReject, "", "", "", "NUL"},
		{"relative", nil, RouteReject, "", "", "", "does not start with /"},
		{"/api/phones", nil, RouteOther, "", "", "", ""}, // the status page's, through Extra
		{"/api/phones/000413A11FA7", nil, RouteOther, "", "", "", ""},
		{"/", nil, RouteOther, "", "", "", ""},
		{"/metrics", nil, RouteOther, "", "", "", ""},
		{"/snomD345.xml", nil, RouteOther, "", "", "", "end in .htm"},
		{"/snomD345-000413A11FA.htm", nil, RouteOther, "snomD345", "", "", "12 hex digits"},
		{"/snom-000413A11FA7.htm", nil, RouteOther, "", "", "", "phone type"},
		{"/snomD3!5.htm", nil, RouteOther, "", "", "", "phone type"},
		{"/snom.htm", nil, RouteOther, "", "", "", "phone type"},
		{"/000413A11FA7.xml", nil, RouteOther, "", "", "", "bare MAC"},
		{"/api/phones/000413A11FA7", nil, RouteOther, "", "", "", ""},
		{"/phones/000413A11FA7", nil, RouteOther, "", "", "", ""},
		{"/snomfoo-firmware.htm", nil, RouteFirmwareFile, "snomfoo", "", "", ""},
	}
	for _, tt := range tests {
		got := route(tt.path, tt.tpl)
		mac := ""
		if got.HasMAC {
			mac = got.MAC.String()
		}
		if got.Kind != tt.kind || got.Model != tt.model || mac != tt.mac || got.Name != tt.name {
			t.Errorf("route(%q) = %+v; want kind %d model %q mac %q name %q", tt.path, got, tt.kind, tt.model, tt.mac, tt.name)
		}
		if (tt.reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, tt.reason) {
			t.Errorf("route(%q).Reason = %q, want %q", tt.path, got.Reason, tt.reason)
		}
	}
}

func FuzzRoute(f *testing.F) {
	named, _ := provision.ParseURLTemplate("http://host/cfg/{phone_type}/{mac}.xml")
	for _, s := range []string{"/snomD345.htm", "/snomD345-000413A11FA7.htm", "/snomD765/snomD765-firmware.htm",
		"/firmware/x.bin", "/cfg/snomD785/000413A11FA7.xml", "/../x", "//firmware//a", "/000413A11FA7.xml"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, path string, useTemplate bool) {
		tpl := (*provision.URLTemplate)(nil)
		if useTemplate {
			tpl = &named
		}
		r := route(path, tpl)
		switch r.Kind {
		case RouteFirmwareImage:
			// Whatever reaches os.Root is relative and free of "..".
			if r.Name == "" || strings.HasPrefix(r.Name, "/") || strings.Contains(r.Name, "\\") {
				t.Fatalf("bad image name %q from %q", r.Name, path)
			}
			for _, seg := range strings.Split(r.Name, "/") {
				if seg == ".." || seg == "." || seg == "" {
					t.Fatalf("image name %q from %q has segment %q", r.Name, path, seg)
				}
			}
		case RoutePhone:
			if !r.HasMAC {
				t.Fatalf("per-MAC route without MAC from %q", path)
			}
		case RouteReject:
			if r.Reason == "" {
				t.Fatalf("reject without reason for %q", path)
			}
		}
		if r.Kind != RouteReject && r.Kind != RouteOther && r.Reason != "" {
			t.Fatalf("matched route with a failure reason for %q: %+v", path, r)
		}
	})
}
