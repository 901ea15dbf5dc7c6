package httpd

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/internal/snomcert"
	"github.com/snomprov/snomprov/internal/tlsca"
	"github.com/snomprov/snomprov/provision"
)

// withHTTPS turns HTTPS on with a pair from internal/tlsca and returns a
// client trusting only that CA.
func withHTTPS(t *testing.T) (func(*Options), *x509.CertPool) {
	t.Helper()
	p, err := tlsca.Ensure(t.TempDir(), tlsca.Names{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	return func(o *Options) {
		o.HTTPSListen, o.TLSCert, o.TLSKey = "127.0.0.1:0", p.CertFile, p.KeyFile
		o.CleartextPhones = nil
	}, pool
}

func tlsClient(pool *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
}

// TestBootstrap: over plain HTTP a configured phone's own file is withheld
// and replaced by the file that moves the phone to HTTPS; over HTTPS,
// trusting the appliance's CA, it gets its own file.
func TestBootstrap(t *testing.T) {
	https, _ := withHTTPS(t)
	h := start(t, testConfig(), https)
	port := h.srv.TLSAddr().(interface{ String() string }).String()
	port = port[strings.LastIndexByte(port, ':')+1:]
	own := "/snomD785-" + macA + ".htm"

	r := get(t, nil, "GET", h.url+own, "User-Agent", uaD785)
	if r.status != 200 || strings.Contains(r.body, "topsecret401") || strings.Contains(r.body, "user_name") {
		t.Fatalf("own file over plain HTTP: %d\n%s", r.status, r.body)
	}
	if got, _ := settingOf(t, r.body, "setting_server"); got != "https://127.0.0.1:"+port+"/" {
		t.Errorf("bootstrap setting_server = %q, want https://127.0.0.1:%s/", got, port)
	}
	if !strings.Contains(r.body, `<setting_server perm="R">`) {
		t.Errorf("setting_server is not read-only:\n%s", r.body)
	}
	if o := h.rec.last(t); !o.Event.OK || !strings.Contains(o.Event.Detail, "bootstrap: own file withheld") {
		t.Errorf("recorded %+v", o.Event)
	}
	// A repeat with the ETag is a 304.
	if r2 := get(t, nil, "GET", h.url+own, "If-None-Match", r.header.Get("Etag")); r2.status != 304 {
		t.Errorf("bootstrap with its ETag: %d", r2.status)
	}
	// The general file still comes over plain HTTP.
	if r := get(t, nil, "GET", h.url+"/snomD785.htm"); r.status != 200 {
		t.Errorf("general file over plain HTTP: %d", r.status)
	}
	// The bootstrap hands the CA, and only the CA, in <certificates>.
	pool := handedCA(t, r.body)
	// Over HTTPS, trusting the CA it was handed: its own file.
	r = get(t, tlsClient(pool), "GET", h.tlsURL+own, "User-Agent", uaD785)
	if r.status != 200 || !strings.Contains(r.body, "topsecret401") {
		t.Fatalf("own file over HTTPS: %d\n%s", r.status, r.body)
	}
	// Over HTTPS the files keep the phone there (pin_setting_server = all
	// here: the general file pins it).
	r = get(t, tlsClient(pool), "GET", h.tlsURL+"/snomD785.htm", "User-Agent", uaD785)
	if got, _ := settingOf(t, r.body, "setting_server"); got != h.tlsURL+"/" {
		t.Errorf("setting_server over HTTPS = %q, want %s/", got, h.tlsURL)
	}
	// A phone without secrets is moved to HTTPS as well.
	if r := get(t, nil, "GET", h.url+"/snomD785-"+macB+".htm"); r.status != 200 || strings.Contains(r.body, "402") {
		t.Errorf("phone B over plain HTTP: %d\n%s", r.status, r.body)
	}
	if strings.Contains(h.logs.String(), "topsecret401") {
		t.Error("secret in the log")
	}
}

// handedCA parses the bootstrap's <certificates> into a pool, checking that
// it holds CA certificates only (the leaf renews; its CA does not).
func handedCA(t *testing.T, body string) *x509.CertPool {
	t.Helper()
	var doc struct {
		Certs []struct {
			Type string `xml:"type,attr"`
			Data string `xml:",chardata"`
		} `xml:"certificates>certificate"`
	}
	if err := xml.Unmarshal([]byte(body), &doc); err != nil || len(doc.Certs) == 0 {
		t.Fatalf("bootstrap without <certificates> (%v):\n%s", err, body)
	}
	pool := x509.NewCertPool()
	for _, c := range doc.Certs {
		der, err := base64.StdEncoding.DecodeString(c.Data)
		if err != nil || c.Type != "base64" {
			t.Fatalf("certificate %q: %v", c.Type, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil || !cert.IsCA {
			t.Fatalf("handed certificate is not a CA (%v): %v", err, cert.Subject)
		}
		pool.AddCert(cert)
	}
	return pool
}

// TestBootstrapNamedURL: with a {mac} URL the bootstrap names the same URL
// with https and the HTTPS port.
func TestBootstrapNamedURL(t *testing.T) {
	https, _ := withHTTPS(t)
	cfg := testConfig()
	cfg.HTTP.URL = "http://127.0.0.1/cfg/{mac}.xml"
	h := start(t, cfg, https)
	r := get(t, nil, "GET", h.url+"/cfg/"+macA+".xml")
	port := h.tlsURL[strings.LastIndexByte(h.tlsURL, ':')+1:]
	if got, _ := settingOf(t, r.body, "setting_server"); r.status != 200 || got != "https://127.0.0.1:"+port+"/cfg/{mac}.xml" {
		t.Errorf("%d setting_server %q\n%s", r.status, got, r.body)
	}
	if strings.Contains(r.body, "topsecret401") {
		t.Error("secret over plain HTTP")
	}
}

// TestCleartextException: an explicit exception gets its own file over
// plain HTTP, and the exception is a warning check shows.
func TestCleartextException(t *testing.T) {
	https, _ := withHTTPS(t)
	for name, mutate := range map[string]func(*Options){
		"phone": func(o *Options) { https(o); o.CleartextPhones = plainA },
		"model": func(o *Options) { https(o); o.CleartextModels = []string{"snomD785"} },
	} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t, testConfig(), mutate)
			p, err := Prepare(o)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Warnings) == 0 || !strings.Contains(p.Warnings[0].Msg, "over plain HTTP too") {
				t.Errorf("warnings %v", p.Warnings)
			}
			p.Close()
			h := serve(t, o)
			if r := get(t, nil, "GET", h.url+"/snomD785-"+macA+".htm", "User-Agent", uaD785); r.status != 200 || !strings.Contains(r.body, "topsecret401") {
				t.Errorf("exception over plain HTTP: %d\n%s", r.status, r.body)
			}
		})
	}
}

// snomLikeCA is internal/snomcert's CA and device certificates, as TLS
// client certificates.
func snomLikeCA(t *testing.T, dir string, macs ...string) (caFile string, certs map[string]tls.Certificate) {
	t.Helper()
	caFile, devices := snomcert.Mint(t, dir, macs...)
	certs = map[string]tls.Certificate{}
	for m, d := range devices {
		certs[m] = d.TLS
	}
	return caFile, certs
}

func TestClientCert(t *testing.T) {
	dir := t.TempDir()
	caFile, certs := snomLikeCA(t, dir, macA, macB)
	_, otherCerts := snomLikeCA(t, t.TempDir(), macA) // same layout, another CA
	https, pool := withHTTPS(t)
	own := "/snomD785-" + macA + ".htm"
	tests := []struct {
		policy string
		cert   *tls.Certificate
		status int
		reason string
	}{
		{ClientCertRequire, ptr(certs[macA]), 200, ""},
		{ClientCertRequire, nil, 404, "sent no certificate"},
		{ClientCertRequire, ptr(certs[macB]), 404, "is phone 000413B22FB8's, not 000413A11FA7's"},
		{ClientCertRequire, ptr(otherCerts[macA]), 404, "does not chain to http.client_ca"},
		{ClientCertOptional, nil, 200, ""},
		{ClientCertOptional, ptr(certs[macB]), 404, "is phone 000413B22FB8's"},
	}
	for _, tt := range tests {
		name := tt.policy + "/none"
		if tt.cert != nil {
			c, _ := x509.ParseCertificate(tt.cert.Certificate[0])
			name = tt.policy + "/" + c.Subject.CommonName
		}
		t.Run(name, func(t *testing.T) {
			h := start(t, testConfig(), func(o *Options) { https(o); o.ClientCert, o.ClientCA = tt.policy, caFile })
			var client *http.Client
			if tt.cert != nil {
				client = tlsClient(pool, *tt.cert)
			} else {
				client = tlsClient(pool)
			}
			r := get(t, client, "GET", h.tlsURL+own)
			if r.status != tt.status || (tt.status == 200) != strings.Contains(r.body, "topsecret401") {
				t.Fatalf("%d, want %d\n%s", r.status, tt.status, r.body)
			}
			if tt.reason != "" && (!strings.Contains(r.body, tt.reason) || !strings.Contains(h.logs.String(), tt.reason)) {
				t.Errorf("reason %q not in the answer or the log\n%s\n%s", tt.reason, r.body, h.logs)
			}
			// The general file needs no certificate.
			if r := get(t, client, "GET", h.tlsURL+"/snomD785.htm"); r.status != 200 {
				t.Errorf("general file: %d", r.status)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCertMAC(t *testing.T) {
	for cn, want := range map[string]string{"000413A11FA7": macA, "000413a11fa7": macA, "00:04:13:A1:1F:A7": "", "snom": "", "": ""} {
		got, ok := CertMAC(&x509.Certificate{Subject: pkix.Name{CommonName: cn}})
		if ok != (want != "") || ok && got != mac(want) {
			t.Errorf("CertMAC(CN=%q) = %v %v, want %q", cn, got, ok, want)
		}
	}
}

// TestTrustedProxies: a trusted proxy's X-Forwarded-Proto https counts as
// HTTPS and its X-Forwarded-For is the client; nobody else's is believed.
func TestTrustedProxies(t *testing.T) {
	h := start(t, testConfig(), func(o *Options) {
		o.CleartextPhones = nil
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	own := h.url + "/snomD785-" + macA + ".htm"
	for _, tt := range []struct {
		name   string
		hdr    []string
		status int
		secret bool
	}{
		{"proxy, https, allowed client", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "10.1.2.3"}, 200, true},
		{"proxy, plain HTTP", []string{"X-Forwarded-Proto", "http", "X-Forwarded-For", "10.1.2.3"}, 404, false},
		{"proxy, client outside allowed_networks", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "192.168.5.5"}, 404, false},
		{"the proxy itself is not allowed", []string{"X-Forwarded-Proto", "https"}, 404, false},
		{"a spoofed hop before the proxy's is not believed", []string{"X-Forwarded-Proto", "https", "X-Forwarded-For", "10.9.9.9, 192.168.5.5"}, 404, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, nil, "GET", own, tt.hdr...)
			if r.status != tt.status || strings.Contains(r.body, "topsecret401") != tt.secret {
				t.Errorf("%d, want %d\n%s", r.status, tt.status, r.body)
			}
		})
	}
}

// TestSecurityOptions: the rules Prepare applies, each error keyed.
func TestSecurityOptions(t *testing.T) {
	dir := t.TempDir()
	https, _ := withHTTPS(t)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o644)
	certFile, keyFile, _ := selfSigned(t, dir, "a")
	_, otherKey, _ := selfSigned(t, t.TempDir(), "b")
	tests := []struct {
		name    string
		mutate  func(*Options)
		key     string
		message string
	}{
		{"secrets with HTTPS off", func(o *Options) { o.CleartextPhones = nil }, "https_listen", "could only be served in clear"},
		{"same port", func(o *Options) { https(o); o.Listen, o.HTTPSListen = ":8080", ":8080" }, "https_listen", "same port"},
		{"bad https_listen", func(o *Options) { https(o); o.HTTPSListen = "8443" }, "https_listen", "not an address"},
		{"HTTPS without a certificate", func(o *Options) { https(o); o.TLSCert, o.TLSKey = "", "" }, "https_listen", "needs a certificate"},
		{"client_cert without client_ca", func(o *Options) { https(o); o.ClientCert = ClientCertRequire }, "client_ca", "needs client_ca"},
		{"client_ca not PEM", func(o *Options) { https(o); o.ClientCert, o.ClientCA = ClientCertRequire, garbage }, "client_ca", "no PEM certificate"},
		{"client_cert without HTTPS", func(o *Options) { o.ClientCert, o.ClientCA = ClientCertOptional, garbage }, "client_cert", "only presented over HTTPS"},
		{"client_cert unknown", func(o *Options) { https(o); o.ClientCert = "sometimes" }, "client_cert", "not allowed"},
		{"tls_cert not PEM", func(o *Options) { https(o); o.TLSCert = garbage }, "tls_cert", "not a PEM certificate"},
		{"tls_key not PEM", func(o *Options) { https(o); o.TLSCert, o.TLSKey = certFile, garbage }, "tls_key", "not a PEM private key"},
		{"tls_key of another certificate", func(o *Options) { https(o); o.TLSCert, o.TLSKey = certFile, otherKey }, "tls_key", "does not go with"},
		{"tls_cert without https_listen", func(o *Options) { o.TLSCert, o.TLSKey = certFile, keyFile }, "tls_cert", "https_listen is empty"},
		{"cleartext model not a type", func(o *Options) { https(o); o.CleartextModels = []string{"D785"} }, "cleartext_models[0]", "not a phone type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, testConfig(), tt.mutate)
			_, err := Prepare(o)
			var fe *field.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Prepare: %v, want a field.Error", err)
			}
			found := false
			for _, e := range fieldErrors(err) {
				found = found || e.Key == tt.key && strings.Contains(e.Msg, tt.message)
			}
			if !found {
				t.Errorf("Prepare: %v; want %s: …%s…", err, tt.key, tt.message)
			}
		})
	}
	// Valid: keyFile kept in use so the pair is a real one.
	if _, err := Prepare(testOptions(t, testConfig(), func(o *Options) { https(o); o.TLSCert, o.TLSKey = certFile, keyFile })); err != nil {
		t.Errorf("a configured pair: %v", err)
	}
}

func fieldErrors(err error) []*field.Error {
	var es field.Errors
	if errors.As(err, &es) {
		return es
	}
	var e *field.Error
	if errors.As(err, &e) {
		return []*field.Error{e}
	}
	return nil
}

// TestOld3xxWarned: a snom3xx phone with a SIP password and HTTPS on is a
// warning (no factory certificate; CA trust undocumented).
func TestOld3xxWarned(t *testing.T) {
	https, _ := withHTTPS(t)
	cfg := testConfig()
	cfg.Phones[0].Model = "snom320"
	cat, err := provision.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, cfg, https)
	o.Catalog = cat
	p, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Msg, "old 3xx series") {
		t.Errorf("warnings %v", p.Warnings)
	}

}

// TestStatusOverHTTPS: with HTTPS on, the status page (Extra) is answered
// on HTTPS, and plain HTTP is redirected there before any password is
// asked for.
func TestStatusOverHTTPS(t *testing.T) {
	https, pool := withHTTPS(t)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="status"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("status page"))
	})
	h := start(t, testConfig(), func(o *Options) { https(o); o.Extra = page })
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r := get(t, noFollow, "GET", h.url+"/phones/000413A11FA7?x=1")
	if r.status != http.StatusPermanentRedirect || r.header.Get("Location") != h.tlsURL+"/phones/000413A11FA7?x=1" {
		t.Errorf("plain HTTP: %d Location %q, want 308 to %s/phones/...", r.status, r.header.Get("Location"), h.tlsURL)
	}
	if r := get(t, tlsClient(pool), "GET", h.tlsURL+"/"); r.status != 401 {
		t.Errorf("HTTPS without the password: %d", r.status)
	}
}

// TestGeneralSecretsWarned: a secret in [settings] is served in every
// general file, over plain HTTP too: check says so.
func TestGeneralSecretsWarned(t *testing.T) {
	https, _ := withHTTPS(t)
	cfg := testConfig()
	cfg.Settings["admin_mode_password"] = config.Setting{Value: "0000"}
	p, err := Prepare(testOptions(t, cfg, https))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].Msg, "admin_mode_password") {
		t.Errorf("warnings %v", p.Warnings)
	}
}

// FuzzFromProxy: whatever a client puts in X-Forwarded-For and
// X-Forwarded-Proto, an untrusted peer's request is left as it came, and a
// trusted proxy's names an address from the header or the proxy itself.
func FuzzFromProxy(f *testing.F) {
	f.Add("10.1.2.3", "https", true)
	f.Add("10.9.9.9, 127.0.0.2,::ffff:10.0.0.1", "HTTP", true)
	f.Add("garbage,, ,[::1]", "https", false)
	sec := security{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	f.Fuzz(func(t *testing.T, xff, proto string, trusted bool) {
		peer := netip.MustParseAddr("192.168.1.9")
		if trusted {
			peer = netip.MustParseAddr("127.0.0.1")
		}
		r := &http.Request{Header: http.Header{"X-Forwarded-For": {xff}, "X-Forwarded-Proto": {proto}}}
		req := request{ip: peer}
		sec.fromProxy(&req, r)
		if !trusted && (req.ip != peer || req.tls) {
			t.Fatalf("untrusted peer rewritten to %v tls=%v", req.ip, req.tls)
		}
		if req.tls && !strings.EqualFold(proto, "https") {
			t.Fatalf("tls from X-Forwarded-Proto %q", proto)
		}
		if req.ip != peer {
			found := false
			for _, part := range strings.Split(xff, ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(part)); err == nil && a.Unmap() == req.ip {
					found = true
				}
			}
			if !found {
				t.Fatalf("client %v is not in X-Forwarded-For %q", req.ip, xff)
			}
		}
	})
}

// TestLoadCertificate: a renewed pair is served from the next handshake.
func TestLoadCertificate(t *testing.T) {
	https, _ := withHTTPS(t)
	h := start(t, testConfig(), https)
	renewed, err := tlsca.Ensure(t.TempDir(), tlsca.Names{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(renewed.CAPEM)
	if _, err := tlsClient(pool).Get(h.tlsURL + "/snomD785.htm"); err == nil {
		t.Fatal("the new CA already verifies the old certificate")
	}
	if err := h.srv.LoadCertificate(renewed.CertFile, renewed.KeyFile); err != nil {
		t.Fatal(err)
	}
	if r := get(t, tlsClient(pool), "GET", h.tlsURL+"/snomD785.htm"); r.status != 200 {
		t.Errorf("after LoadCertificate: %d", r.status)
	}
	if err := h.srv.LoadCertificate(renewed.CertFile, renewed.CAFile); err == nil {
		t.Error("a certificate as the key was accepted")
	}
}
