package simulate

import (
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/phone"
)

func testID(t *testing.T) Identity {
	t.Helper()
	m, err := phone.ParseMAC("000413920A74")
	if err != nil {
		t.Fatal(err)
	}
	return Identity{MAC: m, Model: "snomD735", Firmware: "10.1.47.0"}
}

func TestSettingFileURLs(t *testing.T) {
	id := testID(t)
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		// The seed's examples.
		{"http://192.168.137.1", []string{"http://192.168.137.1/snomD735.htm", "http://192.168.137.1/snomD735-000413920A74.htm"}, false},
		{"http://example.com/test.xml", []string{"http://example.com/test.xml", "http://example.com/test-000413920A74.xml"}, false},
		{"http://example.com/test{mac}.xml", []string{"http://example.com/test000413920A74.xml"}, false},
		// Variations.
		{"http://10.0.0.1:8080/", []string{"http://10.0.0.1:8080/snomD735.htm", "http://10.0.0.1:8080/snomD735-000413920A74.htm"}, false},
		{"http://10.0.0.1/prov/", []string{"http://10.0.0.1/prov/snomD735.htm", "http://10.0.0.1/prov/snomD735-000413920A74.htm"}, false},
		{"http://10.0.0.1/prov.php?mac={mac}", []string{"http://10.0.0.1/prov.php?mac=000413920A74"}, false},
		{"http://10.0.0.1/{phone_type}/{firmware_version}/", []string{"http://10.0.0.1/snomD735/10.1.47.0/snomD735.htm", "http://10.0.0.1/snomD735/10.1.47.0/snomD735-000413920A74.htm"}, false},
		{"http://10.0.0.1/settings", []string{"http://10.0.0.1/settings", "http://10.0.0.1/settings-000413920A74"}, false},
		{"ftp://10.0.0.1/", nil, true},
		{"10.0.0.1", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := SettingFileURLs(tt.in, id)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SettingFileURLs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestFirmwareFallbackURLs(t *testing.T) {
	id := testID(t)
	id.Model = "snomD765"
	tests := []struct{ in, a, b string }{
		// The seed's example.
		{"http://example.com/test.xml", "http://example.com/snomD765/snomD765-firmware.htm", "http://example.com/snomD765-firmware.htm"},
		{"http://10.0.0.1:8080", "http://10.0.0.1:8080/snomD765/snomD765-firmware.htm", "http://10.0.0.1:8080/snomD765-firmware.htm"},
		{"http://10.0.0.1/p/", "http://10.0.0.1/p/snomD765/snomD765-firmware.htm", "http://10.0.0.1/p/snomD765-firmware.htm"},
	}
	for _, tt := range tests {
		got, err := FirmwareFallbackURLs(tt.in, id)
		if err != nil || len(got) != 2 || got[0] != tt.a || got[1] != tt.b {
			t.Errorf("FirmwareFallbackURLs(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestUserAgentParsesBack(t *testing.T) {
	id := testID(t)
	got, ok := phone.ParseUserAgent(id.UserAgent())
	if !ok || got.MAC != id.MAC || got.Model != id.Model || got.Firmware != id.Firmware {
		t.Errorf("UA %q parsed as %+v %v", id.UserAgent(), got, ok)
	}
}

func TestParseOption43(t *testing.T) {
	// Snom's own examples (snom-provisioning.md §2.2).
	snom := []byte{0x42, 0x0c, 'h', 't', 't', 'p', ':', '/', '/', 't', 'e', 's', 't', 0x00,
		0x43, 0x12, 's', 'n', 'o', 'm', '/', 's', 'e', 't', 't', 'i', 'n', 'g', 's', '.', 'p', 'h', 'p', 0x00,
		0x84, 0x02, '3', 0x00}
	tests := []struct {
		in   []byte
		want map[byte]string
		ok   bool
	}{
		{snom, map[byte]string{66: "http://test", 67: "snom/settings.php", 132: "3"}, true},
		{[]byte{0x84, 0x04, '1', '1', '4', 0x00, 0x85, 0x02, '5', 0x00}, map[byte]string{132: "114", 133: "5"}, true},
		{[]byte{0x00, 0x42, 0x02, 'a', 'b', 0xff, 0x99}, map[byte]string{66: "ab"}, true},
		{[]byte{0x42, 0x0c, 'h'}, map[byte]string{}, false},
		{[]byte{0x42}, map[byte]string{}, false},
		{nil, map[byte]string{}, true},
	}
	for _, tt := range tests {
		got, ok := ParseOption43(tt.in)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOption43(% x) = %v, %v", tt.in, got, ok)
		}
	}
}

func FuzzParseOption43(f *testing.F) {
	f.Add([]byte{0x42, 0x0c, 'h', 't', 't', 'p', ':', '/', '/', 't', 'e', 's', 't', 0x00})
	f.Add([]byte{0x42, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		subs, _ := ParseOption43(b)
		for code, v := range subs {
			if code == 0 || code == 255 || len(v) > 255 {
				t.Fatalf("bad sub-option %d=%q from % x", code, v, b)
			}
		}
	})
}

func TestProvisioningURL(t *testing.T) {
	opt43 := func(subs dhcpv4.Options) dhcpv4.Option {
		return dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, subs.ToBytes())
	}
	tests := []struct {
		name string
		opts []dhcpv4.Option
		want string
	}{
		{"66 alone", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://10.77.0.1:8080/")}, "http://10.77.0.1:8080/"},
		{"66 + 67 joined", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://test"), dhcpv4.OptBootFileName("snom/settings.php")}, "http://test/snom/settings.php"},
		{"66 slash + 67 slash", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://test/"), dhcpv4.OptBootFileName("/a.xml")}, "http://test/a.xml"},
		{"bare host", []dhcpv4.Option{dhcpv4.OptTFTPServerName("10.0.0.1")}, "http://10.0.0.1"},
		{"NUL terminated", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://a/\x00")}, "http://a/"},
		{"43 wins over 66", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://router/"), opt43(dhcpv4.Options{66: []byte("http://snomprov/\x00")})}, "http://snomprov/"},
		{"43/67 joins direct 66", []dhcpv4.Option{dhcpv4.OptTFTPServerName("http://a"), opt43(dhcpv4.Options{67: []byte("b.xml\x00")})}, "http://a/b.xml"},
		{"67 full URL alone", []dhcpv4.Option{dhcpv4.OptBootFileName("http://x/y.xml")}, "http://x/y.xml"},
		{"67 relative alone", []dhcpv4.Option{dhcpv4.OptBootFileName("y.xml")}, ""},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range tt.opts {
			m.UpdateOption(o)
		}
		// Round-trip through the wire format, as a received OFFER would be.
		m, err = dhcpv4.FromBytes(m.ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		if got := ProvisioningURL(m); got.URL != tt.want {
			t.Errorf("%s: URL = %q (%+v), want %q", tt.name, got.URL, got, tt.want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		root    string
		files   int
		status  string
		fw      string
		count   int
		wantErr string
	}{
		{"setting-files", `<?xml version="1.0" encoding="utf-8"?><setting-files><file url="http://a/g.xml"/><file url="http://a/{mac}.xml"/></setting-files>`, "setting-files", 2, "", "", 0, ""},
		{"settings", `<settings><phone-settings e="2"><setting_server perm="R">http://a/</setting_server><firmware_status perm="R">http://a/fw.xml</firmware_status><user_name idx="1" perm="R">401</user_name><user_name idx="2" perm="R">402</user_name></phone-settings><functionKeys><fkey idx="0">line</fkey></functionKeys></settings>`, "settings", 0, "http://a/fw.xml", "", 4, ""},
		{"firmware-settings", `<firmware-settings><firmware perm="">http://a/firmware/x.bin</firmware></firmware-settings>`, "firmware-settings", 0, "", "http://a/firmware/x.bin", 0, ""},
		{"escaped ampersand", `<firmware-settings><firmware>http://a/r.bin?mac={mac}&amp;chained_url=x</firmware></firmware-settings>`, "firmware-settings", 0, "", "http://a/r.bin?mac={mac}&chained_url=x", 0, ""},
		{"keep", `<firmware-settings>
  <!-- keep the running firmware: the rollout waits -->
</firmware-settings>`, "firmware-settings", 0, "", "", 0, ""},
		{"html 404 page", `<html><body>404</body></html>`, "", 0, "", "", 0, "not a Snom provisioning file"},
		{"broken", `<settings><phone-settings>`, "", 0, "", "", 0, "not well-formed"},
		{"raw ampersand", `<firmware-settings><firmware>http://a/?a=1&b=2</firmware></firmware-settings>`, "", 0, "", "", 0, "not well-formed"},
		{"empty", ``, "", 0, "", "", 0, "empty document"},
		{"two roots", `<settings/><settings/>`, "", 0, "", "", 0, "more than one root"},
	}
	for _, tt := range tests {
		f, err := ParseSettings([]byte(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		keep := ""
		if tt.name == "keep" {
			keep = "keep the running firmware: the rollout waits"
		}
		if err != nil || f.Root != tt.root || len(f.Files) != tt.files || f.FirmwareStatus != tt.status || f.Firmware != tt.fw || f.SettingCount != tt.count || f.Keep != keep {
			t.Errorf("%s: %+v, %v", tt.name, f, err)
		}
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(`<setting-files><file url="http://a/g.xml"/></setting-files>`))
	f.Add([]byte(`<settings><phone-settings><firmware_status>x</firmware_status></phone-settings></settings>`))
	f.Add([]byte(`<firmware-settings><firmware>http://a/x.bin</firmware></firmware-settings>`))
	f.Add([]byte(`<firmware-settings><!-- keep: held --></firmware-settings>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSettings(b)
		if err == nil && s.Root == "" {
			t.Fatalf("accepted %q without a root", b)
		}
		_ = s.Summary()
	})
}

func TestSubscribeFormat(t *testing.T) {
	id := testID(t)
	sub := newSubscribe(id, netip.MustParseAddrPort("10.77.0.5:5060"))
	msg, err := sip.ParseMessage(sub.bytes)
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	if req.Method != sip.SUBSCRIBE || req.Recipient.User != "MAC%3a000413920A74" {
		t.Errorf("request line %s %s", req.Method, req.Recipient.String())
	}
	want := map[string]string{
		"Event":      `ua-profile;profile-type="device";vendor="snom";model="snomD735";version="10.1.47.0"`,
		"Expires":    "0",
		"Accept":     "application/url",
		"User-Agent": "snomD735/10.1.47.0",
		"Call-ID":    sub.callID,
	}
	for h, v := range want {
		if got := req.GetHeader(h); got == nil || got.Value() != v {
			t.Errorf("%s = %v, want %s", h, got, v)
		}
	}
	via := req.Via()
	if via.Host != "10.77.0.5" || via.Port != 5060 || !via.Params.Has("rport") || via.Params.Has("branch") {
		t.Errorf("Via %s (Snom desk phones send rport and no branch)", via.Value())
	}
	if tag, _ := req.From().Params.Get("tag"); tag == "" {
		t.Error("From has no tag")
	}
	if c := req.Contact(); c == nil || c.Address.Host != "10.77.0.5" || c.Address.Port != 5060 {
		t.Errorf("Contact %v", c)
	}
}

func TestNotifyHandling(t *testing.T) {
	const callID = "123@10.77.0.5"
	mk := func(via, ct, body string) *sip.Request {
		raw := "NOTIFY sip:10.77.0.5:5060 SIP/2.0\r\nVia: " + via + "\r\nFrom: <sip:MAC%3a000413920A74@x>;tag=1\r\nTo: <sip:MAC%3a000413920A74@x>;tag=2\r\nCall-ID: " + callID + "\r\nCSeq: 3 NOTIFY\r\nEvent: ua-profile\r\nContent-Type: " + ct + "\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
		m, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			t.Fatalf("%v: %q", err, raw)
		}
		return m.(*sip.Request)
	}
	src := netip.MustParseAddrPort("10.77.0.1:40000")
	tests := []struct {
		name             string
		req              *sip.Request
		wantURL, wantTo  string
		wantWarn, toWarn bool
	}{
		{"good with rport", mk("SIP/2.0/UDP 10.77.0.1:5060;branch=z9hG4bKa;rport", "application/url", "http://10.77.0.1:8080/"), "http://10.77.0.1:8080/", "10.77.0.1:40000", false, false},
		{"good, answer to Via", mk("SIP/2.0/UDP 10.77.0.1:5060;branch=z9hG4bKa", "application/url", "http://10.77.0.1/{mac}"), "http://10.77.0.1/{mac}", "10.77.0.1:5060", false, false},
		{"Via 0.0.0.0", mk("SIP/2.0/UDP 0.0.0.0:5060;branch=z9hG4bKa", "application/url", "http://a/"), "http://a/", "10.77.0.1:40000", false, true},
		{"wrong content type", mk("SIP/2.0/UDP 10.77.0.1;branch=z9hG4bKa", "text/plain", "http://a/"), "http://a/", "10.77.0.1:5060", true, false},
		{"empty body", mk("SIP/2.0/UDP 10.77.0.1;branch=z9hG4bKa", "application/url", ""), "", "10.77.0.1:5060", true, false},
		{"not a URL", mk("SIP/2.0/UDP 10.77.0.1;branch=z9hG4bKa", "application/url", "hello"), "", "10.77.0.1:5060", true, false},
	}
	for _, tt := range tests {
		url, _, warns := readNotify(tt.req, callID)
		if url != tt.wantURL || (len(warns) > 0) != tt.wantWarn {
			t.Errorf("%s: url %q warns %q", tt.name, url, warns)
		}
		to, w := notifyReplyAddr(tt.req, src)
		if to.String() != tt.wantTo || (w != "") != tt.toWarn {
			t.Errorf("%s: reply to %s (%q), want %s", tt.name, to, w, tt.wantTo)
		}
		ok, err := sip.ParseMessage([]byte(okFor(tt.req)))
		if err != nil {
			t.Fatalf("%s: our 200 does not parse: %v", tt.name, err)
		}
		res := ok.(*sip.Response)
		if res.StatusCode != 200 || res.CallID().Value() != callID || res.CSeq().MethodName != sip.NOTIFY {
			t.Errorf("%s: 200 = %s", tt.name, res.String())
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestAddToMAC(t *testing.T) {
	m, _ := phone.ParseMAC("000413FFFFFE")
	if got := addToMAC(m, 1).String(); got != "000413FFFFFF" {
		t.Errorf("+1 = %s", got)
	}
	if got := addToMAC(m, 2).String(); got != "000413000000" {
		t.Errorf("+2 = %s (the OUI must stay)", got)
	}
	if r := RandomSnomMAC(); !r.IsSnom() {
		t.Errorf("random MAC %s is not Snom", r)
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		o   Options
		err string
	}{
		{Options{}, "no interface"},
		{Options{Interface: "eth0", Model: "yealinkT46"}, "not a Snom phone type"},
		{Options{Interface: "eth0", Count: MaxCount + 1}, "more than"},
	}
	for _, tt := range tests {
		err := tt.o.fill()
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%+v: err %v, want %q", tt.o, err, tt.err)
		}
	}
	o := Options{Interface: "eth0"}
	if err := o.fill(); err != nil || o.Model != DefaultModel || o.Firmware != DefaultFirmware || o.Count != 1 || !o.MAC.IsSnom() || o.Timeout != DefaultTimeout {
		t.Errorf("defaults: %+v %v", o, err)
	}
}

func TestFirstIPv4(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo")
	}
	if got := firstIPv4(lo); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("firstIPv4(lo) = %v", got)
	}
}

func TestBootstrapTarget(t *testing.T) {
	https := SettingsFile{Settings: map[string]string{"setting_server": "https://10.0.0.2:8443/"}}
	plain := SettingsFile{Settings: map[string]string{"setting_server": "http://10.0.0.2/"}}
	for _, tt := range []struct {
		current string
		files   []SettingsFile
		want    string
	}{
		{"http://10.0.0.2/", []SettingsFile{plain, https}, "https://10.0.0.2:8443/"},
		{"http://10.0.0.2/", []SettingsFile{plain}, ""},
		{"http://10.0.0.2/", nil, ""},
		{"https://10.0.0.2:8443/", []SettingsFile{https}, ""}, // already there: no loop
	} {
		if got := bootstrapTarget(tt.current, tt.files); got != tt.want {
			t.Errorf("bootstrapTarget(%q) = %q, want %q", tt.current, got, tt.want)
		}
	}
}
