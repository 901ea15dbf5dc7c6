package e2e

// HTTP end to end: the real binary on 127.0.0.1 (loopback needs no
// namespace; PnP and DHCP are off so nothing leaves the machine), walked
// with curl and Go's client through the seed's URL sequences.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/servetest"
	"github.com/snomprov/snomprov/internal/snomcert"
	"github.com/snomprov/snomprov/internal/syncbuf"
)

const (
	httpMAC     = "000413A11FA7"
	httpUA      = "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413A11FA7 SXM:0 UXM:0)"
	httpImage   = "snomD765-10.1.215.13-SIP-r.bin"
	httpSecret  = "e2e-sip-secret"
	httpBaseCfg = `
[server]
interface = "lo"
advertise = "127.0.0.1"
state_dir = "%[1]s/state"

[http]
listen = "127.0.0.1:%[2]d"
firmware_dir = "%[1]s/fw"
%[3]s

[pnp]
enabled = false

[provision]
# These tests read setting_server from the general files (the default,
# "configured", pins it in the phones' own files only).
pin_setting_server = "all"

[settings]
language = "English"
web_note = { value = "a & b < c > \"d\"", perm = "RW" }

[models.snomD765]
firmware = "` + httpImage + `"
[models.snomD765.settings]
language = "Deutsch"

[models.snomD345.settings]
tone_scheme = "GER"

[[phones]]
mac = "00:04:13:a1:1f:a7"
model = "snomD785"
[phones.settings]
user_name = { 1 = "401" }
user_pass = { 1 = "` + httpSecret + `" }
[phones.fkeys]
1 = { value = "blf sip:402@pbx", label = "Mary", context = "1" }

[[phonebook]]
name = "Adrian & Co"
number = "42965"
`
)

// serveProc is one running `snomprov serve`.
type serveProc struct {
	*servetest.Proc
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
}

// freePort picks an unused high port on loopback.
func freePort(t testing.TB) int { return servetest.FreePort(t) }

// httpEnv is a config directory with the firmware image in place.
func httpEnv(t testing.TB, extra string) (dir string, port int, cfgPath string) {
	t.Helper()
	dir = t.TempDir()
	port = freePort(t)
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fw", httpImage), imageBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "snomprov.toml")
	writeHTTPConfig(t, cfgPath, dir, port, extra)
	return dir, port, cfgPath
}

func writeHTTPConfig(t testing.TB, path, dir string, port int, extra string) {
	t.Helper()
	if !strings.Contains(extra, "https_listen") {
		// These tests are of plain HTTP: HTTPS off, and the phone with a
		// SIP password an explicit exception (TestBootstrapE2E is HTTPS's).
		extra = plainHTTP + extra
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf(httpBaseCfg, dir, port, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// plainHTTP turns HTTPS off and makes the snomD785 phones, which carry SIP
// passwords, explicit cleartext exceptions: for the tests of plain HTTP.
const plainHTTP = "https_listen = \"\"\ncleartext_models = [\"snomD785\"]\n"

var imageBytes = bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB

// startServe runs the binary and waits for msg=ready.
func startServe(t testing.TB, cfgPath string) *serveProc {
	t.Helper()
	p := servetest.Serve(t, cfgPath)
	return &serveProc{Proc: p, cmd: p.Cmd, logs: p.Logs}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serveProc) stop(t testing.TB) { p.Stop(t) }

// curl runs curl and returns status code, headers and body.
func curl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	hdr := filepath.Join(t.TempDir(), "h")
	full := append([]string{"-sS", "--path-as-is", "-D", hdr, "-o", "-", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command("curl", full...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	h, _ := os.ReadFile(hdr)
	return code, string(h), s[:i]
}

type settingsDoc struct {
	XMLName       xml.Name `xml:"settings"`
	PhoneSettings struct {
		E     string `xml:"e,attr"`
		Items []struct {
			XMLName xml.Name
			Idx     string `xml:"idx,attr"`
			Perm    string `xml:"perm,attr"`
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"phone-settings"`
	FKeys *struct {
		E    string `xml:"e,attr"`
		Keys []struct {
			Idx     string `xml:"idx,attr"`
			Context string `xml:"context,attr"`
			Label   string `xml:"label,attr"`
			Perm    string `xml:"perm,attr"`
			Value   string `xml:",chardata"`
		} `xml:"fkey"`
	} `xml:"functionKeys"`
	TBook *struct {
		Complete string `xml:"complete,attr"`
		Items    []struct {
			Name string `xml:"name"`
		} `xml:"item"`
	} `xml:"tbook"`
}

func parseDoc(t *testing.T, body string) settingsDoc {
	t.Helper()
	var d settingsDoc
	if err := xml.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("not Snom XML: %v\n%s", err, body)
	}
	if !strings.HasPrefix(body, `<?xml version="1.0" encoding="utf-8"?>`) || d.PhoneSettings.E != "2" {
		t.Fatalf("missing declaration or e=\"2\":\n%s", body)
	}
	return d
}

func (d settingsDoc) value(name string) string {
	for _, it := range d.PhoneSettings.Items {
		if it.XMLName.Local == name {
			return it.Value
		}
	}
	return ""
}

func TestHTTPBaseURLSequence(t *testing.T) {
	needTool(t, "curl")
	dir, port, cfg := httpEnv(t, "")
	p := startServe(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	// Seed step 2: a D345 with base URL fetches snomD345.htm, then snomD345-<MAC>.htm.
	code, hdr, body := curl(t, "-A", httpUA, base+"/snomD345.htm")
	d := parseDoc(t, body)
	if code != 200 || d.value("tone_scheme") != "GER" || d.value("language") != "English" || d.value("setting_server") != base+"/" {
		t.Errorf("general file: %d\n%s", code, body)
	}
	if !strings.Contains(strings.ToLower(hdr), "content-type: application/xml; charset=utf-8") || !strings.Contains(strings.ToLower(hdr), "etag:") {
		t.Errorf("headers:\n%s", hdr)
	}
	if d.value("web_note") != `a & b < c > "d"` || !strings.Contains(body, "a &amp; b &lt; c &gt; &quot;d&quot;") {
		t.Errorf("escaping:\n%s", body)
	}
	if d.TBook == nil || d.TBook.Complete != "true" || d.TBook.Items[0].Name != "Adrian & Co" {
		t.Errorf("tbook:\n%s", body)
	}
	for _, mac := range []string{"000413A11FA7", "000413a11fa7"} {
		code, _, body = curl(t, "-A", httpUA, base+"/snomD345-"+mac+".htm")
		d = parseDoc(t, body)
		if code != 200 || d.value("user_name") != "401" || d.FKeys == nil || d.FKeys.E != "2" || d.FKeys.Keys[0].Label != "Mary" || d.FKeys.Keys[0].Context != "1" {
			t.Errorf("per-MAC file %s: %d\n%s", mac, code, body)
		}
	}
	// Unknown phone (generic): general yes, per-MAC 404.
	if code, _, _ := curl(t, base+"/snomD345-000413000001.htm"); code != 404 {
		t.Errorf("unknown per-MAC file: %d", code)
	}
	if !strings.Contains(p.logs.String(), "not in config") {
		t.Errorf("404 reason not logged:\n%s", p.logs)
	}

	// Seed step 3: firmware file fallbacks and the image.
	code, _, body = curl(t, base+"/snomD765.htm")
	d = parseDoc(t, body)
	if d.value("firmware_status") != base+"/snomD765-firmware.htm" || d.value("update_policy") != "auto_update" {
		t.Errorf("firmware pointers:\n%s", body)
	}
	for _, path := range []string{"/snomD765/snomD765-firmware.htm", "/snomD765-firmware.htm"} {
		code, _, body = curl(t, base+path)
		var fw struct {
			Firmware string `xml:"firmware"`
		}
		if err := xml.Unmarshal([]byte(body), &fw); err != nil || code != 200 || fw.Firmware != base+"/firmware/"+httpImage {
			t.Errorf("%s: %d %v\n%s", path, code, err, body)
		}
	}
	if code, _, _ := curl(t, base+"/snomD345-firmware.htm"); code != 404 {
		t.Errorf("firmware of a model without one: %d", code)
	}
	img := base + "/firmware/" + httpImage
	code, hdr, _ = curl(t, "-I", img)
	if code != 200 || headerValue(hdr, "Content-Length") != fmt.Sprint(len(imageBytes)) || headerValue(hdr, "Accept-Ranges") != "bytes" {
		t.Errorf("HEAD image: %d\n%s", code, hdr)
	}
	etag := headerValue(hdr, "Etag")
	code, _, body = curl(t, "-r", "100-199", img)
	if code != 206 || body != string(imageBytes[100:200]) {
		t.Errorf("Range: %d %d bytes", code, len(body))
	}
	if code, _, _ := curl(t, "-H", "If-None-Match: "+etag, img); etag == "" || code != 304 {
		t.Errorf("If-None-Match %q: %d", etag, code)
	}

	// Path traversal cannot escape firmware_dir.
	os.WriteFile(filepath.Join(dir, "outside.txt"), []byte("OUTSIDE"), 0o644)
	os.Symlink(filepath.Join(dir, "outside.txt"), filepath.Join(dir, "fw", "link.bin"))
	for _, path := range []string{"/firmware/../outside.txt", "/firmware/%2e%2e/outside.txt", "/firmware/%2e%2e%2foutside.txt",
		"/firmware/link.bin", "/firmware/" + strings.TrimPrefix(filepath.Join(dir, "outside.txt"), "/"), "/firmware//" + filepath.Join(dir, "outside.txt")} {
		code, _, body := curl(t, base+path)
		if code == 200 || strings.Contains(body, "OUTSIDE") {
			t.Errorf("%s escaped: %d %q", path, code, body)
		}
	}

	// The inventory saw the phone, with model, firmware and path.
	var phones []struct {
		MAC      string
		Model    string
		Firmware string
		IP       string
	}
	resp, err := http.Get(base + "/api/phones")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&phones)
	resp.Body.Close()
	found := false
	for _, ph := range phones {
		if ph.MAC == httpMAC && ph.Model != "" && ph.Firmware == "10.1.33.33" && ph.IP == "127.0.0.1" {
			found = true
		}
	}
	if !found {
		t.Errorf("/api/phones lacks %s: %+v", httpMAC, phones)
	}
	// One phone's record has every request with path, status and size.
	resp, err = http.Get(base + "/api/phones/" + httpMAC)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`GET /snomD345-000413A11FA7.htm 200 `, `GET /snomD345-000413a11fa7.htm 200 `, `"step": "phone"`, `"step": "general"`} {
		if !strings.Contains(string(one), want) {
			t.Errorf("/api/phones/%s lacks %s:\n%s", httpMAC, want, one)
		}
	}
	if strings.Contains(p.logs.String(), httpSecret) {
		t.Error("secret in logs")
	}

	// The record survives a restart and `snomprov phones` prints it.
	p.stop(t)
	out, err := exec.Command(binary(t), "phones", "-config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), httpMAC) && !strings.Contains(string(out), "00:04:13:a1:1f:a7") {
		t.Errorf("snomprov phones after stop: %v\n%s", err, out)
	}
	p2 := startServe(t, cfg)
	resp, err = http.Get(base + "/api/phones")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), httpMAC) {
		t.Errorf("inventory lost across restart: %s\n%s", b, p2.logs)
	}
}

func headerValue(hdr, name string) string {
	for _, line := range strings.Split(hdr, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestHTTPNamedAndPlaceholderURLs(t *testing.T) {
	needTool(t, "curl")
	port := freePort(t)
	named := fmt.Sprintf("url = \"http://127.0.0.1:%d/prov/office.xml\"", port)
	dir, _, _ := httpEnv(t, "")
	cfg := filepath.Join(dir, "named.toml")
	writeHTTPConfig(t, cfg, dir, port, named)
	p := startServe(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	uaD765 := "Mozilla/4.0 (compatible; snomD765-SIP 10.1.33.33 x 000413A11FA7)"
	_, _, body := curl(t, "-A", uaD765, base+"/prov/office.xml")
	if d := parseDoc(t, body); d.value("language") != "Deutsch" || d.value("setting_server") != fmt.Sprintf("http://127.0.0.1:%d/prov/office.xml", port) {
		t.Errorf("named general file (model from User-Agent):\n%s", body)
	}
	code, _, body := curl(t, "-A", uaD765, base+"/prov/office-000413A11FA7.xml")
	if d := parseDoc(t, body); code != 200 || d.value("user_name") != "401" {
		t.Errorf("named per-MAC file: %d\n%s", code, body)
	}
	// The seed's D765 firmware guesses for http://example.com/test.xml.
	for _, path := range []string{"/prov/snomD765/snomD765-firmware.htm", "/prov/snomD765-firmware.htm", "/snomD765/snomD765-firmware.htm"} {
		if code, _, body := curl(t, base+path); code != 200 || !strings.Contains(body, "<firmware-settings>") {
			t.Errorf("%s: %d", path, code)
		}
	}
	p.stop(t)

	// Placeholders: http://host/cfg/{phone_type}/{mac}.xml → /cfg/snomD785/000413A11FA7.xml
	ph := fmt.Sprintf("url = \"http://127.0.0.1:%d/cfg/{phone_type}/{mac}.xml\"", port)
	writeHTTPConfig(t, cfg, dir, port, ph)
	startServe(t, cfg)
	code, _, body = curl(t, "-A", httpUA, base+"/cfg/snomD785/000413A11FA7.xml")
	if d := parseDoc(t, body); code != 200 || d.value("user_name") != "401" || d.value("language") != "English" {
		t.Errorf("placeholder URL: %d\n%s", code, body)
	}
	code, _, body = curl(t, base+"/cfg/snomD765/000413a11fa7.xml")
	if d := parseDoc(t, body); code != 200 || d.value("language") != "Deutsch" || d.value("firmware_status") == "" {
		t.Errorf("placeholder URL, D765: %d\n%s", code, body)
	}
}

func TestHTTPSAuthAndDeny(t *testing.T) {
	needTool(t, "curl")
	dir := t.TempDir()
	certFile, keyFile := e2eCert(t, dir)
	port := freePort(t)
	extra := fmt.Sprintf("https_listen = \"127.0.0.1:%d\"\nusername = \"prov\"\npassword = \"pw-e2e\"\ntls_cert = %q\ntls_key = %q\nunknown_phones = \"deny\"", port, certFile, keyFile)
	_, _, cfg := httpEnv(t, extra)
	p := startServe(t, cfg)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	if code, hdr, _ := curl(t, "--cacert", certFile, base+"/snomD345.htm"); code != 401 || headerValue(hdr, "WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d", code)
	}
	authed := fmt.Sprintf("https://prov:pw-e2e@127.0.0.1:%d", port)
	code, _, body := curl(t, "--cacert", certFile, "-A", httpUA, authed+"/snomD345.htm")
	d := parseDoc(t, body)
	if code != 200 || !strings.HasPrefix(d.value("setting_server"), "https://prov:pw-e2e@127.0.0.1:") {
		t.Errorf("https + basic auth: %d\n%s", code, body)
	}
	// deny: a phone not in [[phones]] gets nothing.
	if code, _, _ := curl(t, "--cacert", certFile, "-A", "Mozilla/4.0 (compatible; snomD345-SIP 10.1.33.33 x 000413000001)", authed+"/snomD345.htm"); code != 404 {
		t.Errorf("deny, unknown phone: %d", code)
	}
	// Go's client with the same CA.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", base+"/snomD785-000413A11FA7.htm", nil)
	req.SetBasicAuth("prov", "pw-e2e")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || parseDoc(t, string(b)).value("user_pass") != httpSecret {
		t.Errorf("Go client over https: %d\n%s", resp.StatusCode, b)
	}
	if strings.Contains(p.logs.String(), "pw-e2e") || strings.Contains(p.logs.String(), httpSecret) {
		t.Errorf("secret in logs:\n%s", p.logs)
	}
}

// TestBootstrapE2E: the default, through the real binary and curl. Over
// plain HTTP a configured phone's own file is the bootstrap (no secret,
// setting_server moved to HTTPS); over HTTPS, trusting the CA snomprov
// made in state_dir/tls, it is the phone's file; check reports the
// configuration clean.
func TestBootstrapE2E(t *testing.T) {
	needTool(t, "curl")
	tlsPort := freePort(t)
	dir, port, cfg := httpEnv(t, fmt.Sprintf("https_listen = \"127.0.0.1:%d\"", tlsPort))
	startServe(t, cfg)
	own := "/snomD785-" + httpMAC + ".htm"
	code, _, body := curl(t, "-A", httpUA, fmt.Sprintf("http://127.0.0.1:%d%s", port, own))
	if d := parseDoc(t, body); code != 200 || d.value("setting_server") != fmt.Sprintf("https://127.0.0.1:%d/", tlsPort) || strings.Contains(body, httpSecret) {
		t.Fatalf("own file over plain HTTP: %d\n%s", code, body)
	}
	ca := filepath.Join(dir, "state", "tls", "ca.crt")
	code, _, body = curl(t, "--cacert", ca, "-A", httpUA, fmt.Sprintf("https://127.0.0.1:%d%s", tlsPort, own))
	if code != 200 || parseDoc(t, body).value("user_pass") != httpSecret {
		t.Fatalf("own file over HTTPS: %d\n%s", code, body)
	}
	out, err := exec.Command(binary(t), "check", "-config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": ok (") {
		t.Errorf("check: %v\n%s", err, out)
	}
}

// TestClientCertE2E: client_cert = "require" through the binary: the
// phone's own file needs a device certificate of client_ca (minted with
// Snom's layout) naming that phone; another phone's gets 404, and so does
// none; general files need none.
func TestClientCertE2E(t *testing.T) {
	needTool(t, "curl")
	tlsPort := freePort(t)
	caDir := t.TempDir()
	caFile, devices := snomcert.Mint(t, caDir, httpMAC, "000413B22FB8")
	dir, _, cfg := httpEnv(t, fmt.Sprintf("https_listen = \"127.0.0.1:%d\"\nclient_cert = \"require\"\nclient_ca = %q", tlsPort, caFile))
	p := startServe(t, cfg)
	ca := filepath.Join(dir, "state", "tls", "ca.crt")
	base := fmt.Sprintf("https://127.0.0.1:%d", tlsPort)
	own := base + "/snomD785-" + httpMAC + ".htm"
	mine, other := devices[httpMAC], devices["000413B22FB8"]
	if code, _, body := curl(t, "--cacert", ca, "--cert", mine.CertFile, "--key", mine.KeyFile, own); code != 200 || parseDoc(t, body).value("user_pass") != httpSecret {
		t.Errorf("own certificate: %d\n%s", code, body)
	}
	if code, _, body := curl(t, "--cacert", ca, "--cert", other.CertFile, "--key", other.KeyFile, own); code != 404 || strings.Contains(body, httpSecret) {
		t.Errorf("another phone's certificate: %d\n%s", code, body)
	}
	if code, _, body := curl(t, "--cacert", ca, own); code != 404 || strings.Contains(body, httpSecret) {
		t.Errorf("no certificate: %d\n%s", code, body)
	}
	if code, _, _ := curl(t, "--cacert", ca, base+"/snomD785.htm"); code != 200 {
		t.Errorf("general file without a certificate: %d", code)
	}
	if !strings.Contains(p.logs.String(), "the client certificate is phone 000413B22FB8's, not 000413A11FA7's") {
		t.Errorf("no warning for the other phone's certificate:\n%s", p.logs)
	}
}

func e2eCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "snomprov e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestHTTPReloadOnSIGHUP(t *testing.T) {
	needTool(t, "curl")
	dir, port, cfg := httpEnv(t, "")
	p := startServe(t, cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/snomD345.htm", port)
	lang := func() string {
		_, _, body := curl(t, url)
		return parseDoc(t, body).value("language")
	}
	if got := lang(); got != "English" {
		t.Fatalf("language = %q", got)
	}
	body, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(body, []byte(`language = "English"`), []byte(`language = "Francais"`), 1), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !eventually(func() bool { return lang() == "Francais" }) {
		t.Fatalf("SIGHUP did not apply the new config:\n%s", p.logs)
	}
	// A broken config keeps the old one serving and says why.
	os.WriteFile(cfg, []byte("[http]\nlisten = \n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !eventually(func() bool { return strings.Contains(p.logs.String(), "reload failed") }) {
		t.Errorf("bad config not reported:\n%s", p.logs)
	}
	if got := lang(); got != "Francais" {
		t.Errorf("after a bad reload language = %q, want the old config's", got)
	}
	_ = dir
}

func eventually(f func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if f() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}
