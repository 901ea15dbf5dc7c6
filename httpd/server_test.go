package httpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/syncbuf"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

const (
	macA   = "000413A11FA7"
	macB   = "000413B22FB8"
	uaD785 = "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413A11FA7 SXM:0 UXM:0)"
	uaOld  = "Mozilla/4.0 (compatible; snom320-SIP 8.4.18 1.1.3-s)"
	uaDECT = "Mozilla/4.0 (compatible; Snom M900 05.20.0001 000413b22fb8)"
)

// plainA makes phone A, the one with a SIP password, an explicit
// cleartext exception for the tests of plain HTTP.
var plainA = []phone.MAC{mac(macA)}

func mac(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func testConfig() *config.Config {
	return &config.Config{
		Server:    config.Server{Advertise: netip.MustParseAddr("127.0.0.1")},
		HTTP:      config.HTTP{Listen: "127.0.0.1:0", UnknownPhones: provision.UnknownGeneric},
		Provision: config.Provision{DefaultPerm: "R", PinSettingServer: config.PinAll},
		Settings:  config.Settings{"language": {Value: "English"}},
		Models: map[string]config.Model{
			"snomD785": {Firmware: "snomD785-10.1.215.13-SIP-r.bin", Settings: config.Settings{"language": {Value: "Deutsch"}}},
			"snomD765": {Firmware: "snomD765-10.1.215.13-SIP-r.bin"},
			"snomD345": {Settings: config.Settings{"tone_scheme": {Value: "GER"}}},
		},
		Phones: []config.Phone{
			{MAC: mac(macA), Model: "snomD785", Settings: config.Settings{
				"user_name": {Indexed: map[int]config.IndexedValue{1: {Value: "401"}}},
				"user_pass": {Indexed: map[int]config.IndexedValue{1: {Value: "topsecret401"}}},
			}},
			{MAC: mac(macB), Settings: config.Settings{"user_name": {Indexed: map[int]config.IndexedValue{1: {Value: "402"}}}}},
		},
	}
}

// recorder keeps every observation for assertions.
type recorder struct {
	mu  sync.Mutex
	obs []inventory.Observation
}

func (r *recorder) Record(o inventory.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *recorder) last(t *testing.T) inventory.Observation {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.obs) == 0 {
		t.Fatal("nothing recorded")
	}
	return r.obs[len(r.obs)-1]
}

// after waits until more than n observations exist and returns the last:
// a streamed file is recorded once the body is written, which the client
// may see first.
func (r *recorder) after(t *testing.T, n int) inventory.Observation {
	t.Helper()
	for i := 0; i < 200 && r.count() <= n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return r.last(t)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.obs)
}

type harness struct {
	srv *Server
	url string // http://127.0.0.1:port
	// tlsURL is https://127.0.0.1:port when HTTPSListen is set.
	tlsURL string
	rec    *recorder
	logs   *syncbuf.Buffer
	fw     string // firmware_dir
}

// start runs a real server on 127.0.0.1:0 and stops it at cleanup.
func start(t *testing.T, cfg *config.Config, mutate func(*Options)) *harness {
	t.Helper()
	return serve(t, testOptions(t, cfg, mutate))
}

// testOptions renders cfg and makes a firmware_dir holding one image.
func testOptions(t *testing.T, cfg *config.Config, mutate func(*Options)) Options {
	t.Helper()
	cat, err := provision.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fw := t.TempDir()
	if err := os.WriteFile(filepath.Join(fw, "snomD785-10.1.215.13-SIP-r.bin"), firmwareImage, 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{
		Listen:        cfg.HTTP.Listen,
		URL:           cfg.HTTP.URL,
		FirmwareDir:   fw,
		UnknownPhones: cfg.HTTP.UnknownPhones,
		Catalog:       cat,
		// Plain-HTTP tests: phone A (with a SIP password) is an explicit
		// exception; security_test.go covers the bootstrap and HTTPS.
		CleartextPhones: plainA,
	}
	if mutate != nil {
		mutate(&o)
	}
	return o
}

// serve runs a server with options o.
func serve(t *testing.T, o Options) *harness {
	t.Helper()
	h := &harness{rec: &recorder{}, logs: &syncbuf.Buffer{}, fw: o.FirmwareDir}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	h.srv, err = New(o, log, h.rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.srv.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after cancel", err)
		}
	})
	h.url = "http://" + h.srv.Addr().String()
	if a := h.srv.TLSAddr(); a != nil {
		h.tlsURL = "https://" + a.String()
	}
	return h
}

// running binds and serves s until the returned cancel; done yields
// Serve's result.
func running(t *testing.T, s *Server) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Bind(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	return cancel, errc
}

var firmwareImage = bytes.Repeat([]byte("SNOMFIRMWARE0123"), 4096) // 64 KiB

type resp struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, client *http.Client, method, url string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	r, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(b)}
}

// settingOf extracts <name ...>value</name> from a settings file parsed
// with encoding/xml.
func settingOf(t *testing.T, body, name string) (string, bool) {
	t.Helper()
	var doc struct {
		PhoneSettings struct {
			Items []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"phone-settings"`
	}
	if err := xml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("response is not XML: %v\n%s", err, body)
	}
	for _, it := range doc.PhoneSettings.Items {
		if it.XMLName.Local == name {
			return it.Value, true
		}
	}
	return "", false
}

func TestBaseURL(t *testing.T) {
	h := start(t, testConfig(), nil)
	tests := []struct {
		path    string
		status  int
		setting string
		want    string
	}{
		{"/snomD345.htm", 200, "tone_scheme", "GER"},
		{"/snomD345.htm", 200, "language", "English"},
		{"/snomD785.htm", 200, "language", "Deutsch"},
		{"/snomD345-000413A11FA7.htm", 200, "user_name", "401"},
		{"/snomD345-000413a11fa7.htm", 200, "user_name", "401"},
		{"/snomD785-000413b22fb8.htm", 200, "user_name", "402"},
		{"/snomD345-000413000001.htm", 404, "", ""},
	}
	for _, tt := range tests {
		r := get(t, nil, "GET", h.url+tt.path)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.path, r.status, tt.status, r.body)
			continue
		}
		if tt.status != 200 {
			continue
		}
		if ct := r.header.Get("Content-Type"); ct != "application/xml; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", tt.path, ct)
		}
		if r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" {
			t.Errorf("%s: no ETag/Last-Modified: %v", tt.path, r.header)
		}
		if got, _ := settingOf(t, r.body, tt.setting); got != tt.want {
			t.Errorf("%s: %s = %q, want %q", tt.path, tt.setting, got, tt.want)
		}
	}
}

func TestSettingServerFollowsHost(t *testing.T) {
	// A multi-homed appliance: each phone is pointed back at the address it used.
	h := start(t, testConfig(), nil)
	for _, host := range []string{"10.1.2.3:8080", "192.168.7.1"} {
		r := get(t, nil, "GET", h.url+"/snomD785.htm", "Host", host)
		if got, _ := settingOf(t, r.body, "setting_server"); got != "http://"+host+"/" {
			t.Errorf("Host %s: setting_server = %q", host, got)
		}
		if got, _ := settingOf(t, r.body, "firmware_status"); got != "http://"+host+"/snomD785-firmware.htm" {
			t.Errorf("Host %s: firmware_status = %q", host, got)
		}
	}
	// pin_setting_server = false
	cfg := testConfig()
	cfg.Provision.PinSettingServer = config.PinOff
	h = start(t, cfg, nil)
	if _, ok := settingOf(t, get(t, nil, "GET", h.url+"/snomD785.htm").body, "setting_server"); ok {
		t.Error("setting_server written with pin_setting_server = false")
	}
}

func TestNamedURL(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.URL = "http://127.0.0.1/prov/office.xml"
	h := start(t, cfg, nil)
	r := get(t, nil, "GET", h.url+"/prov/office.xml", "User-Agent", uaD785)
	if got, _ := settingOf(t, r.body, "language"); r.status != 200 || got != "Deutsch" {
		t.Errorf("named general file with D785 User-Agent: %d language=%q", r.status, got)
	}
	if got, _ := settingOf(t, r.body, "setting_server"); got != cfg.HTTP.URL {
		t.Errorf("setting_server = %q, want the named URL", got)
	}
	// Without a User-Agent model: global settings only.
	r = get(t, nil, "GET", h.url+"/prov/office.xml")
	if got, _ := settingOf(t, r.body, "language"); r.status != 200 || got != "English" {
		t.Errorf("named general file without model: %d language=%q", r.status, got)
	}
	r = get(t, nil, "GET", h.url+"/prov/office-000413A11FA7.xml", "User-Agent", uaD785)
	if got, _ := settingOf(t, r.body, "user_name"); r.status != 200 || got != "401" {
		t.Errorf("named per-MAC file: %d user_name=%q", r.status, got)
	}
	// The seed's firmware fallbacks relative to the URL's directory.
	for _, p := range []string{"/prov/snomD785/snomD785-firmware.htm", "/prov/snomD785-firmware.htm", "/snomD785-firmware.htm"} {
		if r := get(t, nil, "GET", h.url+p); r.status != 200 || !strings.Contains(r.body, "<firmware-settings>") {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
}

func TestPlaceholderURL(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.URL = "http://127.0.0.1/cfg/{phone_type}/{mac}.xml"
	h := start(t, cfg, nil)
	r := get(t, nil, "GET", h.url+"/cfg/snomD785/000413A11FA7.xml", "User-Agent", uaD785)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	// The one file carries general, model and phone settings.
	for name, want := range map[string]string{"language": "Deutsch", "user_name": "401", "firmware_status": "http://127.0.0.1/snomD785-firmware.htm"} {
		if got, _ := settingOf(t, r.body, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// {firmware_version} and a query {mac}
	cfg.HTTP.URL = "http://127.0.0.1/p/{phone_type}-{firmware_version}.php?id={mac}"
	h = start(t, cfg, nil)
	n := h.rec.count()
	r = get(t, nil, "GET", h.url+"/p/snomD785-10.1.33.33.php?id=000413A11FA7")
	if got, _ := settingOf(t, r.body, "user_name"); r.status != 200 || got != "401" {
		t.Errorf("query {mac}: %d user_name=%q\n%s", r.status, got, r.body)
	}
	if o := h.rec.after(t, n); o.MAC != mac(macA) || o.Firmware != "10.1.33.33" || o.Model != "snomD785" {
		t.Errorf("recorded %+v", o)
	}
}

func TestFirmware(t *testing.T) {
	h := start(t, testConfig(), nil)
	for _, p := range []string{"/snomD785/snomD785-firmware.htm", "/snomD785-firmware.htm"} {
		r := get(t, nil, "GET", h.url+p)
		var f struct {
			XMLName  xml.Name `xml:"firmware-settings"`
			Firmware string   `xml:"firmware"`
		}
		if err := xml.Unmarshal([]byte(r.body), &f); err != nil || r.status != 200 {
			t.Fatalf("%s: %d %v\n%s", p, r.status, err, r.body)
		}
		if f.Firmware != h.url+"/firmware/snomD785-10.1.215.13-SIP-r.bin" {
			t.Errorf("%s: firmware = %q", p, f.Firmware)
		}
		// The image URL written into the file works.
		img := get(t, nil, "GET", f.Firmware)
		if img.status != 200 || img.body != string(firmwareImage) || img.header.Get("Content-Type") != "application/octet-stream" {
			t.Errorf("image: %d %d bytes %q", img.status, len(img.body), img.header.Get("Content-Type"))
		}
	}
	// A model without firmware gets 404.
	if r := get(t, nil, "GET", h.url+"/snomD345-firmware.htm"); r.status != 404 {
		t.Errorf("model without firmware: %d", r.status)
	}
	// The general file of a model with firmware points at it.
	r := get(t, nil, "GET", h.url+"/snomD785.htm")
	if got, _ := settingOf(t, r.body, "update_policy"); got != "auto_update" {
		t.Errorf("update_policy = %q", got)
	}
	// Image: HEAD, Range, ETag.
	img := h.url + "/firmware/snomD785-10.1.215.13-SIP-r.bin"
	head := get(t, nil, "HEAD", img)
	if head.status != 200 || head.body != "" || head.header.Get("Content-Length") != fmt.Sprint(len(firmwareImage)) || head.header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %d %q %v", head.status, head.body, head.header)
	}
	etag := head.header.Get("ETag")
	part := get(t, nil, "GET", img, "Range", "bytes=16-31")
	if part.status != 206 || part.body != string(firmwareImage[16:32]) || part.header.Get("Content-Range") != fmt.Sprintf("bytes 16-31/%d", len(firmwareImage)) {
		t.Errorf("Range: %d %q %v", part.status, part.body, part.header)
	}
	if r := get(t, nil, "GET", img, "If-None-Match", etag); etag == "" || r.status != 304 {
		t.Errorf("If-None-Match %q: %d", etag, r.status)
	}
	if r := get(t, nil, "GET", img, "Range", "bytes=16-31", "If-Range", `"stale"`); r.status != 200 {
		t.Errorf("If-Range with stale ETag: %d, want the full image", r.status)
	}
	if r := get(t, nil, "GET", h.url+"/firmware/missing.bin"); r.status != 404 {
		t.Errorf("missing image: %d", r.status)
	}
	// Generated files honour If-None-Match too.
	gen := get(t, nil, "GET", h.url+"/snomD785.htm")
	if r := get(t, nil, "GET", h.url+"/snomD785.htm", "If-None-Match", gen.header.Get("ETag")); r.status != 304 {
		t.Errorf("general file If-None-Match: %d", r.status)
	}
	if r := get(t, nil, "GET", h.url+"/snomD785.htm", "If-None-Match", `"other"`); r.status != 200 {
		t.Errorf("general file, other ETag: %d", r.status)
	}
	if r := get(t, nil, "GET", h.url+"/snomD785.htm", "If-Modified-Since", gen.header.Get("Last-Modified")); r.status != 304 {
		t.Errorf("general file If-Modified-Since: %d", r.status)
	}
	if r := get(t, nil, "GET", h.url+"/snomD785.htm", "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"); r.status != 200 {
		t.Errorf("general file, old If-Modified-Since: %d", r.status)
	}
}

func TestIdentity(t *testing.T) {
	h := start(t, testConfig(), nil)
	tests := []struct {
		name, path, ua             string
		wantMAC, wantModel, wantFW string
		wantStep                   inventory.Step
	}{
		{"desk UA", "/snomD785.htm", uaD785, macA, "snomD785", "10.1.33.33", inventory.StepGeneral},
		{"DECT UA", "/snomM900.htm", uaDECT, macB, "snomM900", "05.20.0001", inventory.StepGeneral},
		{"old UA, MAC from path", "/snom320-000413A11FA7.htm", uaOld, macA, "snom320", "8.4.18", inventory.StepPhone},
		{"?mac=", "/snomD785.htm?mac=000413b22fb8", uaOld, macB, "snomD785", "8.4.18", inventory.StepGeneral},
		{"firmware image ?mac=", "/firmware/snomD785-10.1.215.13-SIP-r.bin?mac=000413A11FA7", "", macA, "snomD785", "", inventory.StepFirmwareImage},
		{"firmware file", "/snomD785-firmware.htm", uaD785, macA, "snomD785", "10.1.33.33", inventory.StepFirmwareFile},
	}
	for _, tt := range tests {
		n := h.rec.count()
		r := get(t, nil, "GET", h.url+tt.path, "User-Agent", tt.ua)
		if r.status != 200 {
			t.Errorf("%s: status %d", tt.name, r.status)
			continue
		}
		o := h.rec.after(t, n)
		if o.MAC.String() != tt.wantMAC || o.Model != tt.wantModel || o.Firmware != tt.wantFW || o.Event.Step != tt.wantStep || !o.IP.IsLoopback() {
			t.Errorf("%s: recorded %+v", tt.name, o)
		}
		if o.Event.Kind != "200" || !o.Event.OK || !strings.HasPrefix(o.Event.Detail, "GET "+strings.SplitN(tt.path, "?", 2)[0]+" 200 ") {
			t.Errorf("%s: event %+v", tt.name, o.Event)
		}
	}
	// Settings files tell the inventory which firmware they point at.
	for _, tt := range []struct{ path, target string }{
		{"/snomD785.htm", "10.1.215.13"},
		{"/snomD785-000413A11FA7.htm", "10.1.215.13"},
		{"/snomD345.htm", inventory.FirmwareUnmanaged},
		{"/snomD785-firmware.htm", ""},
	} {
		n := h.rec.count()
		get(t, nil, "GET", h.url+tt.path, "User-Agent", uaD785)
		if got := h.rec.after(t, n).FirmwareTarget; got != tt.target {
			t.Errorf("%s: FirmwareTarget = %q, want %q", tt.path, got, tt.target)
		}
	}
	// User-Agent MAC and path MAC disagree: logged, path wins.
	n := h.rec.count()
	get(t, nil, "GET", h.url+"/snomD785-000413B22FB8.htm", "User-Agent", uaD785)
	if !strings.Contains(h.logs.String(), "User-Agent MAC differs") || h.rec.after(t, n).MAC != mac(macB) {
		t.Errorf("mismatch not logged or wrong MAC:\n%s", h.logs)
	}
}

func TestUnknownPhones(t *testing.T) {
	unknownUA := "Mozilla/4.0 (compatible; snomD345-SIP 10.1.33.33 x 000413000001)"
	tests := []struct {
		policy string
		path   string
		ua     string
		status int
	}{
		{"generic", "/snomD345.htm", unknownUA, 200},
		{"generic", "/snomD345-000413000001.htm", unknownUA, 404},
		{"generic", "/snomD785-000413A11FA7.htm", uaD785, 200},
		{"generic", "/snomD785-firmware.htm", unknownUA, 200},
		{"deny", "/snomD345.htm", unknownUA, 404},
		{"deny", "/snomD345.htm", "", 404},
		{"deny", "/snomD345-000413000001.htm", unknownUA, 404},
		{"deny", "/snomD785-firmware.htm", unknownUA, 404},
		{"deny", "/firmware/snomD785-10.1.215.13-SIP-r.bin", unknownUA, 404},
		{"deny", "/snomD785.htm", uaD785, 200},
		{"deny", "/snomD785-000413A11FA7.htm", uaD785, 200},
		{"deny", "/snomD785-firmware.htm", uaD785, 200},
		{"deny", "/snomD785.htm?mac=000413A11FA7", "", 200},
		{"allow", "/snomD345.htm", unknownUA, 200},
		{"allow", "/snomD345-000413000001.htm", unknownUA, 200},
	}
	servers := map[string]*harness{}
	for _, p := range []string{"generic", "deny", "allow"} {
		cfg := testConfig()
		cfg.HTTP.UnknownPhones = p
		servers[p] = start(t, cfg, nil)
	}
	for _, tt := range tests {
		h := servers[tt.policy]
		r := get(t, nil, "GET", h.url+tt.path, "User-Agent", tt.ua)
		if r.status != tt.status {
			t.Errorf("%s %s (UA %q): %d, want %d", tt.policy, tt.path, tt.ua, r.status, tt.status)
		}
		if strings.Contains(r.body, "topsecret401") && !strings.Contains(tt.path, macA) {
			t.Errorf("%s %s: served phone A's secret", tt.policy, tt.path)
		}
	}
	// allow: the unknown phone's file has no phone-specific settings.
	r := get(t, nil, "GET", servers["allow"].url+"/snomD345-000413000001.htm")
	if _, ok := settingOf(t, r.body, "user_name"); ok {
		t.Errorf("allow served settings to an unknown phone: %s", r.body)
	}
	// A request without any MAC still reaches the Recorder (for metrics).
	n := servers["deny"].rec.count()
	get(t, nil, "GET", servers["deny"].url+"/snomD345.htm", "User-Agent", uaOld)
	if o := servers["deny"].rec.after(t, n); !o.MAC.IsZero() || o.Event.Kind != "404" || o.Event.Step != inventory.StepGeneral {
		t.Errorf("MAC-less 404 recorded as %+v", o)
	}
	// Every 404 says which pattern was almost matched and why.
	logs := servers["generic"].logs.String()
	if !strings.Contains(logs, `msg=404`) || !strings.Contains(logs, `pattern=<base>/snom<type>-<MAC>.htm`) || !strings.Contains(logs, "not in config") {
		t.Errorf("404 not explained:\n%s", logs)
	}
	rec := servers["generic"].rec
	rec.mu.Lock()
	o := append([]inventory.Observation(nil), rec.obs...)
	rec.mu.Unlock()
	found := false
	for _, ob := range o {
		if ob.Event.Kind == "404" && !ob.Event.OK && strings.Contains(ob.Event.Detail, "per-MAC file 404: MAC 000413000001 not in config") {
			found = true
		}
	}
	if !found {
		t.Errorf("404 not recorded with its reason: %+v", o)
	}
}

func TestNearMissLogged(t *testing.T) {
	h := start(t, testConfig(), nil)
	for path, want := range map[string]string{
		"/snomD345-000413A11FA.htm": "the MAC needs 12 hex digits",
		"/snomD345.xml":             "end in .htm",
		"/000413A11FA7.xml":         "bare MAC",
		"/nothing-here":             "no provisioning file",
	} {
		if r := get(t, nil, "GET", h.url+path); r.status != 404 {
			t.Errorf("%s: %d", path, r.status)
		}
		if !strings.Contains(h.logs.String(), want) {
			t.Errorf("%s: log lacks %q", path, want)
		}
	}
}

func TestHostileInput(t *testing.T) {
	h := start(t, testConfig(), nil)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("OUTSIDE"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(h.fw, "link.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(h.fw, "dirlink")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(h.fw, "sub"), 0o755)
	for _, p := range []string{
		"/firmware/../../../../etc/passwd",
		"/firmware/%2e%2e/%2e%2e/etc/passwd",
		"/firmware/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
		"/firmware//etc/passwd",
		"/firmware/link.bin",
		"/firmware/dirlink/secret.txt",
		"/firmware/sub",
		"/firmware/sub/",
		"/firmware/..%5c..%5cetc%5cpasswd",
		"/firmware/x%00.bin",
	} {
		// Raw request line, so the client does not clean the path.
		status, body := rawGet(t, h.srv.Addr().String(), p)
		if status != 404 && status != 400 {
			t.Errorf("%s: status %d", p, status)
		}
		if strings.Contains(body, "OUTSIDE") || strings.Contains(body, "root:") {
			t.Errorf("%s escaped: %s", p, body)
		}
	}
	// Header size limit.
	big := strings.Repeat("x", 64<<10)
	if r := get(t, nil, "GET", h.url+"/snomD345.htm", "X-Big", big); r.status != 431 {
		t.Errorf("64 KiB header: %d, want 431", r.status)
	}
	// Only GET and HEAD.
	if r := get(t, nil, "POST", h.url+"/snomD345.htm"); r.status != 405 {
		t.Errorf("POST: %d", r.status)
	}
	// Secrets never reach the log, nor does a query string.
	get(t, nil, "GET", h.url+"/snomD785-000413A11FA7.htm?password=querysecret", "User-Agent", uaD785)
	get(t, nil, "GET", h.url+"/snomD785-00041300000F.htm?password=querysecret")
	if logs := h.logs.String(); strings.Contains(logs, "topsecret401") || strings.Contains(logs, "querysecret") {
		t.Errorf("secret in logs:\n%s", logs)
	}
}

// rawGet sends a request line verbatim.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	b := exchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	var status int
	fmt.Sscanf(b, "HTTP/1.1 %d", &status)
	return status, b
}

func TestTimeouts(t *testing.T) {
	h := start(t, testConfig(), nil)
	// A client that never finishes its headers, or never sends any, is cut
	// off after the header timeout, which for the first head runs from the
	// connect; one that idles between requests is not.
	for _, tt := range []struct {
		name, send string
		delay      time.Duration // before sending
	}{
		{name: "partial head", send: "GET /snomD345.htm HTTP/1.1\r\nHost: x\r\n"},
		{name: "nothing"},
		{name: "partial head after a request", send: "GET /snomD345.htm HTTP/1.1\r\nHost: x\r\n\r\nGET /snomD345.htm HTTP/1.1\r\n"},
		{name: "slow first byte", send: "GET /snomD345.htm HTTP/1.1\r\n", delay: readHeaderTimeout - 2*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", h.srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			connected := time.Now()
			time.Sleep(tt.delay)
			io.WriteString(c, tt.send)
			c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 5*time.Second))
			sent := time.Now()
			if _, err = io.ReadAll(c); err != nil {
				t.Fatalf("connection not closed by the server: %v", err)
			}
			if d := time.Since(sent); tt.delay == 0 && d < readHeaderTimeout-time.Second {
				t.Errorf("closed after %v, before the header timeout", d)
			}
			if d := time.Since(connected); d > readHeaderTimeout+time.Second {
				t.Errorf("closed %v after the connect, want about %v", d, readHeaderTimeout)
			}
		})
	}
	t.Run("idle between requests", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", h.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 2; i++ {
			io.WriteString(c, "GET /snomD345.htm HTTP/1.1\r\nHost: x\r\n\r\n")
			r, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d after %v idle: %v", i, time.Duration(i)*(readHeaderTimeout+time.Second), err)
			}
			io.ReadAll(r.Body)
			time.Sleep(readHeaderTimeout + time.Second)
		}
	})
}

func TestBasicAuth(t *testing.T) {
	cfg := testConfig()
	h := start(t, cfg, func(o *Options) { o.Username, o.Password = "prov", "s3cret" })
	if r := get(t, nil, "GET", h.url+"/snomD785.htm"); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d", r.status)
	}
	u := strings.Replace(h.url, "http://", "http://prov:wrong@", 1)
	if r := get(t, nil, "GET", u+"/snomD785.htm"); r.status != 401 {
		t.Errorf("wrong password: %d", r.status)
	}
	// Phones take http://user:pass@host/ URLs.
	u = strings.Replace(h.url, "http://", "http://prov:s3cret@", 1)
	r := get(t, nil, "GET", u+"/snomD785.htm")
	if r.status != 200 {
		t.Fatalf("right password: %d", r.status)
	}
	// The URLs written into files carry the credentials, so firmware loads.
	fs, _ := settingOf(t, r.body, "firmware_status")
	if !strings.HasPrefix(fs, "http://prov:s3cret@") {
		t.Errorf("firmware_status = %q", fs)
	}
	if r := get(t, nil, "GET", fs); r.status != 200 {
		t.Errorf("firmware_status URL: %d", r.status)
	}
	if strings.Contains(h.logs.String(), "s3cret") {
		t.Error("password in logs")
	}
}

func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "first")
	h := start(t, testConfig(), func(o *Options) { o.HTTPSListen, o.TLSCert, o.TLSKey = "127.0.0.1:0", certFile, keyFile })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	r := get(t, client, "GET", h.tlsURL+"/snomD785.htm")
	if r.status != 200 {
		t.Fatalf("https: %d", r.status)
	}
	if got, _ := settingOf(t, r.body, "setting_server"); !strings.HasPrefix(got, "https://127.0.0.1:") {
		t.Errorf("setting_server over https = %q", got)
	}
	// Plain HTTP on the TLS port fails.
	if _, err := http.Get(strings.Replace(h.tlsURL, "https", "http", 1) + "/snomD785.htm"); err == nil {
		r := get(t, nil, "GET", strings.Replace(h.tlsURL, "https", "http", 1)+"/snomD785.htm")
		if r.status == 200 {
			t.Error("plain HTTP answered on the HTTPS port")
		}
	}
	// Reload picks up a renewed certificate without a restart.
	certFile2, keyFile2, pool2 := selfSigned(t, t.TempDir(), "second")
	cat, _ := provision.New(testConfig())
	if err := h.srv.Reload(Options{Listen: "127.0.0.1:0", HTTPSListen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA, TLSCert: certFile2, TLSKey: keyFile2, FirmwareDir: h.fw}); err != nil {
		t.Fatal(err)
	}
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2}}}
	if r := get(t, client2, "GET", h.tlsURL+"/snomD785.htm"); r.status != 200 {
		t.Errorf("after cert reload: %d", r.status)
	}
}

func selfSigned(t *testing.T, dir, cn string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestReload(t *testing.T) {
	cfg := testConfig()
	h := start(t, cfg, nil)
	before := get(t, nil, "GET", h.url+"/snomD345.htm")
	cfg2 := testConfig()
	cfg2.Settings["language"] = config.Setting{Value: "Francais"}
	cat2, err := provision.New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	// A bad reload is refused and the old options keep serving.
	if err := h.srv.Reload(Options{Listen: cfg.HTTP.Listen, Catalog: cat2, CleartextPhones: plainA, UnknownPhones: "sometimes"}); err == nil || !strings.Contains(err.Error(), `use one of "generic", "deny", "allow"`) {
		t.Errorf("bad reload: %v", err)
	}
	if err := h.srv.Reload(Options{Listen: cfg.HTTP.Listen, Catalog: cat2, CleartextPhones: plainA, FilesDir: "/does/not/exist"}); err == nil {
		t.Error("reload with a missing files_dir accepted")
	}
	if r := get(t, nil, "GET", h.url+"/snomD345.htm"); r.body != before.body {
		t.Error("failed reload changed what is served")
	}
	if err := h.srv.Reload(Options{Listen: cfg.HTTP.Listen, Catalog: cat2, CleartextPhones: plainA, FirmwareDir: h.fw}); err != nil {
		t.Fatal(err)
	}
	after := get(t, nil, "GET", h.url+"/snomD345.htm")
	if got, _ := settingOf(t, after.body, "language"); got != "Francais" || after.header.Get("ETag") == before.header.Get("ETag") {
		t.Errorf("after reload: language %q, etag %s vs %s", got, after.header.Get("ETag"), before.header.Get("ETag"))
	}
}

// TestReloadFreesThePreviousState: the previous catalog (megabytes with
// 1000 phones) must be collectable right after a reload, not only when the
// old roots close 30 s later; otherwise each reload in those 30 s adds a
// whole configuration to the RSS.
func TestReloadFreesThePreviousState(t *testing.T) {
	cfg := testConfig()
	h := start(t, cfg, nil)
	get(t, nil, "GET", h.url+"/snomD345.htm")
	old := weak.Make(h.srv.state.Load())
	cat2, err := provision.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Reload(Options{Listen: cfg.HTTP.Listen, Catalog: cat2, CleartextPhones: plainA, FirmwareDir: h.fw}); err != nil {
		t.Fatal(err)
	}
	get(t, nil, "GET", h.url+"/snomD345.htm")
	runtime.GC()
	runtime.GC()
	if old.Value() != nil {
		t.Error("the state before the reload is still reachable")
	}
}

func TestInflightSurvivesReloadAndShutdown(t *testing.T) {
	h := start(t, testConfig(), nil)
	// Start a slow image download, reload mid-way, and finish it.
	req, _ := http.NewRequest("GET", h.url+"/firmware/snomD785-10.1.215.13-SIP-r.bin", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1024)
	if _, err := io.ReadFull(r.Body, first); err != nil {
		t.Fatal(err)
	}
	cat2, _ := provision.New(testConfig())
	if err := h.srv.Reload(Options{Listen: "127.0.0.1:0", Catalog: cat2, CleartextPhones: plainA}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || len(first)+len(rest) != len(firmwareImage) {
		t.Errorf("download across reload: %d bytes, %v", len(first)+len(rest), err)
	}
	// The new options (no firmware_dir) apply to new requests.
	if r := get(t, nil, "GET", h.url+"/firmware/snomD785-10.1.215.13-SIP-r.bin"); r.status != 404 {
		t.Errorf("after reload without firmware_dir: %d", r.status)
	}
}

func TestBindErrors(t *testing.T) {
	h := start(t, testConfig(), nil)
	cat, _ := provision.New(testConfig())
	s, err := New(Options{Listen: h.srv.Addr().String(), Catalog: cat, CleartextPhones: plainA}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Bind(context.Background())
	if err == nil || !strings.Contains(err.Error(), "change http.listen") {
		t.Errorf("port in use: %v", err)
	}
	for _, o := range []Options{
		{Listen: ":0"},
		{Listen: ":0", Catalog: cat, CleartextPhones: plainA, Username: "u"},
		{Listen: ":0", Catalog: cat, CleartextPhones: plainA, TLSCert: "/x"},
		{Listen: ":0", Catalog: cat, CleartextPhones: plainA, TLSCert: "/nonexistent.pem", TLSKey: "/nonexistent.key"},
		{Listen: ":0", Catalog: cat, CleartextPhones: plainA, FilesDir: "/nonexistent"},
		{Listen: ":0", Catalog: cat, CleartextPhones: plainA, URL: "ftp://x"},
	} {
		if _, err := New(o, nil, nil); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestFilesDirAndExtra(t *testing.T) {
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "gui_lang_DE.xml"), []byte("<gui-languages/>"), 0o644)
	extra := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/api/phones" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, r.Method+" status page")
	})
	h := start(t, testConfig(), func(o *Options) { o.FilesDir = files; o.Extra = extra; o.Username, o.Password = "prov", "pw" })
	// The status page has its own access control: the phones' Basic auth
	// does not apply to it, but it does to files_dir.
	if r := get(t, nil, "GET", h.url+"/"); r.body != "GET status page" {
		t.Errorf("extra behind phone auth: %d %q", r.status, r.body)
	}
	// The status page's actions are POSTs: they reach Extra; a phone file
	// or a files_dir file still takes only GET and HEAD.
	for _, tc := range []struct {
		path string
		want int
	}{{"/", 200}, {"/snomD345.htm", 405}, {"/gui_lang_DE.xml", 405}} {
		if r := get(t, nil, "POST", h.url+tc.path); r.status != tc.want || (tc.want == 200 && r.body != "POST status page") {
			t.Errorf("POST %s: %d %q, want %d", tc.path, r.status, r.body, tc.want)
		}
	}
	if r := get(t, nil, "GET", h.url+"/gui_lang_DE.xml"); r.status != 401 {
		t.Errorf("files_dir without credentials: %d", r.status)
	}
	h.url = strings.Replace(h.url, "http://", "http://prov:pw@", 1)
	n := h.rec.count()
	if r := get(t, nil, "GET", h.url+"/gui_lang_DE.xml?mac="+macA); r.status != 200 || r.body != "<gui-languages/>" {
		t.Errorf("files_dir: %d %q", r.status, r.body)
	}
	if o := h.rec.after(t, n); o.Event.Step != inventory.StepFile || o.MAC != mac(macA) {
		t.Errorf("files_dir event: %+v", o)
	}
	if r := get(t, nil, "GET", h.url+"/"); r.body != "GET status page" {
		t.Errorf("extra: %d %q", r.status, r.body)
	}
	// Without an Inventory option, /api/phones belongs to Extra.
	if r := get(t, nil, "GET", h.url+"/api/phones"); r.body != "GET status page" {
		t.Errorf("/api/phones without Inventory: %d %q", r.status, r.body)
	}
	// Extra's 404s are logged too.
	if r := get(t, nil, "GET", h.url+"/favicon.ico"); r.status != 404 || !strings.Contains(h.logs.String(), "path=/favicon.ico reason=") {
		t.Errorf("Extra 404 not logged: %d\n%s", r.status, h.logs)
	}
	// A near miss is not handed to Extra: the phone must see a 404.
	if r := get(t, nil, "GET", h.url+"/snomD345-12.htm"); r.status != 404 {
		t.Errorf("near miss: %d", r.status)
	}
}

// TestInventoryPersistence: what the server records reaches the store, and
// a restart reads it back. (The status page serves /api/phones, through
// Extra.)
func TestInventoryPersistence(t *testing.T) {
	dir := t.TempDir()
	store, err := inventory.Open(inventory.Path(dir), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := provision.New(testConfig())
	s, err := New(Options{Listen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA}, nil, store)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := running(t, s)
	u := "http://" + s.Addr().String()
	get(t, nil, "GET", u+"/snomD785.htm", "User-Agent", uaD785)
	get(t, nil, "GET", u+"/snomD785-000413A11FA7.htm", "User-Agent", uaD785)
	if r := get(t, nil, "GET", u+"/api/phones"); r.status != 404 {
		t.Errorf("/api/phones without a status page: %d, want 404", r.status)
	}
	phones := store.Phones()
	if len(phones) != 1 {
		t.Fatalf("inventory: %+v", phones)
	}
	p := phones[0]
	if p.MAC != mac(macA) || p.Model != "snomD785" || p.Firmware != "10.1.33.33" || p.IP != "127.0.0.1" || len(p.Events) != 2 ||
		p.Events[1].Detail != "GET /snomD785-000413A11FA7.htm 200 "+fmt.Sprint(len(get(t, nil, "GET", u+"/snomD785-000413A11FA7.htm").body))+"B" {
		t.Errorf("phone = %+v", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	// A restart reads the record back.
	again, err := inventory.Open(inventory.Path(dir), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := again.Phone(mac(macA)); !ok || p.Steps[inventory.StepPhone].OK != true {
		t.Errorf("after restart: %+v %v", p, ok)
	}
}

func TestShutdownWaitsForInflight(t *testing.T) {
	cat, _ := provision.New(testConfig())
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	})
	s, _ := New(Options{Listen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA, Extra: slow}, nil, nil)
	cancel, done := running(t, s)
	got := make(chan string, 1)
	go func() {
		r, err := http.Get("http://" + s.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		got <- string(b)
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the handler
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "done" {
		t.Errorf("in-flight request got %q", b)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestConcurrentRequestsAndReloads(t *testing.T) {
	h := start(t, testConfig(), nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := http.Get(h.url + "/snomD785-000413A11FA7.htm")
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				if r.StatusCode != 200 || !bytes.Contains(b, []byte("topsecret401")) {
					t.Errorf("during reloads: %d %s", r.StatusCode, b)
					return
				}
			}
		}()
	}
	for i := 0; i < 30; i++ {
		cat, _ := provision.New(testConfig())
		if err := h.srv.Reload(Options{Listen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA, FirmwareDir: h.fw}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

// TestChainedParts: a general file that is a <setting-files> list names
// documents under /snomprov/ that the server answers.
func TestChainedParts(t *testing.T) {
	files := t.TempDir()
	os.WriteFile(filepath.Join(files, "gui_lang_DE.xml"), []byte("<phrases/>"), 0o644)
	cfg := testConfig()
	cfg.HTTP.FilesDir = files
	cfg.GUILanguages = []config.Language{{Name: "Deutsch"}}
	{
		h := serve(t, testOptions(t, cfg, func(o *Options) { o.FilesDir = files }))
		top := get(t, nil, "GET", h.url+"/snomD785.htm")
		if top.status != 200 || !strings.Contains(top.body, "<setting-files>") {
			t.Fatalf("general file: %d\n%s", top.status, top.body)
		}
		var list struct {
			Files []struct {
				URL string `xml:"url,attr"`
			} `xml:"file"`
		}
		if err := xml.Unmarshal([]byte(top.body), &list); err != nil || len(list.Files) != 2 {
			t.Fatalf("setting-files: %v %+v", err, list)
		}
		n := h.rec.count()
		settings := get(t, nil, "GET", list.Files[0].URL, "User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.73.4 2010.12-00004-g9ba52f5 "+macA+" SXM:0 UXM:0)")
		if v, _ := settingOf(t, settings.body, "language"); settings.status != 200 || v != "Deutsch" {
			t.Errorf("settings part: %d %q", settings.status, v)
		}
		if o := h.rec.after(t, n); o.Event.Step != inventory.StepFile || o.MAC != mac(macA) || o.Event.Kind != "200" {
			t.Errorf("part event: %+v", o)
		}
		gui := get(t, nil, "GET", list.Files[1].URL)
		if gui.status != 200 || !strings.Contains(gui.body, `<language url="`+h.url+`/gui_lang_DE.xml" name="Deutsch"/>`) {
			t.Errorf("gui part: %d\n%s", gui.status, gui.body)
		}
		if r := get(t, nil, "GET", h.url+"/gui_lang_DE.xml"); r.status != 200 || r.body != "<phrases/>" {
			t.Errorf("language file: %d %q", r.status, r.body)
		}
		if r := get(t, nil, "GET", h.url+"/snomprov/snomD999.xml"); r.status != 404 {
			t.Errorf("unknown part: %d", r.status)
		}
	}
}
