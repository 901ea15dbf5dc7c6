package routerconfig

import (
	"net/netip"
	"strings"
	"testing"
)

var lan = netip.MustParsePrefix("192.168.1.0/24")

// TestGenerateDnsmasqExact pins one whole snippet: it is what users paste.
func TestGenerateDnsmasqExact(t *testing.T) {
	got, err := Generate(Dnsmasq, Params{SettingURL: "http://192.168.1.5/", Filename: "snom.htm"})
	if err != nil {
		t.Fatal(err)
	}
	want := `# snomprov: point Snom phones at http://192.168.1.5/ (DHCP option 66, option 67 snom.htm).
# Add to dnsmasq.conf (or a file in /etc/dnsmasq.d/) and restart dnsmasq.
# Phones: vendor class (option 60) containing "snom", or a Snom MAC prefix.
dhcp-vendorclass=set:snom,snom
dhcp-mac=set:snom,00:04:13:*:*:*
dhcp-mac=set:snom,00:08:7b:*:*:*
# -force: send even when the phone's request list (option 55) lacks them.
dhcp-option-force=tag:snom,66,"http://192.168.1.5/"
dhcp-option-force=tag:snom,67,"snom.htm"
`
	if got != want {
		t.Errorf("dnsmasq snippet:\n%s\nwant:\n%s", got, want)
	}
}

func TestGenerateTargets(t *testing.T) {
	url := "http://192.168.1.5:8080/prov/"
	tests := []struct {
		target   string
		filename string
		want     []string // lines or fragments that must appear
		wantNot  []string
	}{
		{Dnsmasq, "", []string{
			"dhcp-vendorclass=set:snom,snom\n",
			`dhcp-option-force=tag:snom,66,"` + url + `"` + "\n",
		}, []string{",67,", "dhcp-option=tag"}},
		{Kea, "", []string{
			`"client-classes": [`,
			`"test": "substring(option[60].hex,0,4) == 'snom' or substring(pkt4.mac,0,3) == 0x000413 or substring(pkt4.mac,0,3) == 0x00087B",`,
			`{ "name": "tftp-server-name", "code": 66, "data": "` + url + `", "always-send": true }`,
		}, []string{"boot-file-name"}},
		{Kea, "snom.htm", []string{
			`{ "name": "boot-file-name", "code": 67, "data": "snom.htm", "always-send": true }`,
		}, nil},
		{ISC, "", []string{
			"class \"snom\" {\n",
			`match if substring(option vendor-class-identifier, 0, 4) = "snom"`,
			"or substring(hardware, 1, 3) = 00:04:13",
			"or substring(hardware, 1, 3) = 00:08:7b;",
			`option tftp-server-name "` + url + `";`,
			"option dhcp-parameter-request-list = concat(option dhcp-parameter-request-list, 42, 43);",
		}, []string{"bootfile-name"}},
		{ISC, "snom.htm", []string{`option bootfile-name "snom.htm";`}, nil},
		{MikroTik, "", []string{
			`add name=snomprov-66 code=66 value="s'` + url + `'"`,
			"add name=snomprov options=snomprov-66\n",
			"set [find address=192.168.1.0/24] dhcp-option-set=snomprov\n",
		}, []string{"code=67"}},
		{MikroTik, "snom.htm", []string{
			`add name=snomprov-67 code=67 value="s'snom.htm'"`,
			"options=snomprov-66,snomprov-67\n",
		}, nil},
		{Windows, "snom.htm", []string{
			"$Scope = '192.168.1.0'\n",
			"Add-DhcpServerv4Class -Name 'snom' -Type Vendor -Data 'snom'",
			"-Condition OR -VendorClass EQ,'snom*' -MacAddress EQ,000413*,00087B*\n",
			"-PolicyName 'snomprov' -OptionId 66 -Value '" + url + "'\n",
			"-PolicyName 'snomprov' -OptionId 67 -Value 'snom.htm'\n",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target+"/"+tt.filename, func(t *testing.T) {
			got, err := Generate(tt.target, Params{SettingURL: url, Filename: tt.filename, Subnet: lan})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("snippet lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("snippet has %q but should not:\n%s", w, got)
				}
			}
			if !strings.HasSuffix(got, "\n") {
				t.Error("snippet does not end with a newline")
			}
		})
	}
}

func TestGenerateSubnetIsMasked(t *testing.T) {
	got, err := Generate(MikroTik, Params{SettingURL: "http://10.0.0.2/", Subnet: netip.MustParsePrefix("10.0.0.2/24")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "[find address=10.0.0.0/24]") {
		t.Errorf("subnet not masked to its network:\n%s", got)
	}
}

func TestGenerateErrors(t *testing.T) {
	ok := "http://192.168.1.5/"
	tests := []struct {
		name    string
		target  string
		p       Params
		wantErr string
	}{
		{"unknown target", "openwrt", Params{SettingURL: ok}, "use one of dnsmasq, kea, isc, mikrotik, windows"},
		{"no URL", Dnsmasq, Params{}, "set [server] advertise or [http] url"},
		{"relative URL", Kea, Params{SettingURL: "/snom/"}, "not an absolute http:// or https:// URL"},
		{"tftp URL", Kea, Params{SettingURL: "tftp://10.0.0.1/"}, "not an absolute http:// or https:// URL"},
		{"quote in URL", Dnsmasq, Params{SettingURL: `http://x/"a`}, "percent-encode it"},
		{"space in URL", ISC, Params{SettingURL: "http://x/a b"}, "percent-encode it"},
		{"dollar in URL", MikroTik, Params{SettingURL: "http://x/$a", Subnet: lan}, "percent-encode it"},
		{"comma in URL", Kea, Params{SettingURL: "http://x/a,b"}, "percent-encode it"},
		{"newline in filename", Dnsmasq, Params{SettingURL: ok, Filename: "a\nb"}, "option 67"},
		{"too long", Dnsmasq, Params{SettingURL: "http://x/" + strings.Repeat("a", 250)}, "at most 255"},
		{"mikrotik needs subnet", MikroTik, Params{SettingURL: ok}, "give the phones' subnet"},
		{"windows needs subnet", Windows, Params{SettingURL: ok}, "give the phones' subnet"},
		{"IPv6 subnet", Windows, Params{SettingURL: ok, Subnet: netip.MustParsePrefix("fd00::/64")}, "not IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Generate(tt.target, tt.p)
			if err == nil {
				t.Fatalf("no error; snippet:\n%s", got)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// Every target accepts the URL forms snomprov produces.
func TestGenerateAllTargetsAcceptApplianceURLs(t *testing.T) {
	for _, url := range []string{
		"http://10.0.0.2/", "http://10.0.0.2:8080/", "https://prov.example.lan/snom/{mac}.xml",
		"http://10.0.0.2/?mac={mac}&type={phone_type}",
	} {
		for _, target := range Targets() {
			if _, err := Generate(target, Params{SettingURL: url, Subnet: lan}); err != nil {
				t.Errorf("%s with %s: %v", target, url, err)
			}
		}
	}
}
