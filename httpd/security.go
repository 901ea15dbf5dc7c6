package httpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// http.client_cert values.
const (
	ClientCertOff      = "off"
	ClientCertOptional = "optional"
	ClientCertRequire  = "require"
)

// security is the part of a state that decides who gets a phone's own
// file and over what: HTTPS, the cleartext exceptions, the phone's factory
// certificate, the proxies believed and the networks allowed.
type security struct {
	httpsOn         bool
	cleartextModels map[string]bool
	cleartextPhones map[phone.MAC]bool
	clientCert      string
	clientCAs       *x509.CertPool
	trusted         []netip.Prefix
	allowed         []netip.Prefix
	secret          map[phone.MAC]bool // configured phones whose own file holds a secret
}

// checkListen checks a "host:port" option.
func checkListen(errs *field.Errors, key, v string) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		errs.Add(key, `%q is not an address to listen on; write ":80" or "10.0.0.2:8080"`, v)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs.Add(key, "port %q must be a number from 1 to 65535", port)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil {
		errs.Add(key, "host %q must be an IP address or empty (all addresses)", host)
	}
}

// sameSocket reports whether two listen addresses would take the same
// port (an empty host is every address).
func sameSocket(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	return ha == "" || hb == "" || ha == hb
}

// prepareSecurity checks the options that protect secrets. Problems that
// do not stop the server (the exceptions in force) are warnings, so that
// `snomprov check` shows them.
func prepareSecurity(o Options, errs *field.Errors, warn func(*field.Error)) security {
	sec := security{httpsOn: o.HTTPSListen != "", trusted: o.TrustedProxies, allowed: o.AllowedNetworks}
	if sec.httpsOn {
		checkListen(errs, "https_listen", o.HTTPSListen)
		if sameSocket(o.Listen, o.HTTPSListen) {
			errs.Add("https_listen", "%q takes the same port as listen (%q): plain HTTP and HTTPS need a port each, e.g. listen = \":80\" and https_listen = \":443\"", o.HTTPSListen, o.Listen)
		}
		if o.TLSCert == "" {
			errs.Add("https_listen", "HTTPS needs a certificate: set tls_cert and tls_key, or let snomprov make its own in state_dir")
		}
	}
	if !sec.httpsOn && o.TLSCert != "" {
		errs.Add("tls_cert", "is set but https_listen is empty, so no HTTPS would use it; set https_listen = \":443\" (plain HTTP stays on listen)")
	}
	var ok bool
	if sec.clientCert, ok = enum(o.ClientCert, ClientCertOff, ClientCertOptional, ClientCertRequire); !ok {
		errs.Add("client_cert", "%q is not allowed; use %s, %s or %s", o.ClientCert, ClientCertOff, ClientCertOptional, ClientCertRequire)
	}
	if sec.clientCert != ClientCertOff {
		if !sec.httpsOn {
			errs.Add("client_cert", "is %s but https_listen is empty: a client certificate is only presented over HTTPS", sec.clientCert)
		}
		if o.ClientCA == "" {
			errs.Add("client_ca", "client_cert = %q needs client_ca: the PEM file of the CA that signed the phones' device certificates (Snom's)", sec.clientCert)
		} else if pool, err := loadPool(o.ClientCA); err != nil {
			errs.Add("client_ca", "%v", err)
		} else {
			sec.clientCAs = pool
		}
	}
	if len(o.CleartextModels) > 0 {
		sec.cleartextModels = make(map[string]bool, len(o.CleartextModels))
		for i, m := range o.CleartextModels {
			if !phone.ValidModel(m) {
				errs.Add("cleartext_models["+strconv.Itoa(i)+"]", "%q is not a phone type; write it as in the file names, e.g. \"snom320\"", m)
				continue
			}
			sec.cleartextModels[m] = true
			warn(field.Errorf("cleartext_models", "%s phones get their own file, with its SIP passwords, over plain HTTP too (an exception you configured)", m))
		}
	}
	if len(o.CleartextPhones) > 0 {
		sec.cleartextPhones = make(map[phone.MAC]bool, len(o.CleartextPhones))
		var names []string
		for _, m := range o.CleartextPhones {
			sec.cleartextPhones[m] = true
			if len(names) < 5 {
				names = append(names, m.String())
			}
		}
		if len(o.CleartextPhones) > len(names) {
			names = append(names, fmt.Sprintf("and %d more", len(o.CleartextPhones)-len(names)))
		}
		warn(field.Errorf("cleartext_phones", "phones %s get their own file, with its SIP passwords, over plain HTTP too (an exception you configured)", strings.Join(names, ", ")))
	}
	if o.Catalog != nil {
		sec.checkSecrets(o.Catalog, errs, warn)
	}
	return sec
}

// checkSecrets refuses a configuration whose phones' secrets could only
// be served in clear, and warns about the phones of the old 3xx series.
func (sec *security) checkSecrets(cat *provision.Catalog, errs *field.Errors, warn func(*field.Error)) {
	var clear []string
	sec.secret = make(map[phone.MAC]bool)
	for _, m := range cat.SecretPhones() {
		sec.secret[m] = true
		model := cat.PhoneModel(m)
		if sec.exempt(m, model) {
			continue
		}
		if !sec.httpsOn && len(sec.trusted) == 0 {
			clear = append(clear, m.String())
			continue
		}
		if old3xx(model) {
			warn(field.Errorf("cleartext_models", "phone %s is a %s: the old 3xx series has no factory device certificate, and Snom's documents do not say whether it accepts the appliance's CA; if it does not fetch its own file over HTTPS, list it in cleartext_phones (its SIP password then crosses the LAN in clear)", m, model))
		}
	}
	if names := cat.GeneralSecrets(); len(names) > 0 {
		warn(field.Errorf("https_listen", "the general files carry the secret settings %s ([settings] or [models.X.settings]), and general files are served over plain HTTP too; move them to each phone's [phones.settings] to keep them off the LAN in clear", strings.Join(names, ", ")))
	}
	if len(clear) > 0 {
		if len(clear) > 5 {
			clear = append(clear[:5], "…")
		}
		errs.Add("https_listen", "is empty, so the own files of %s, with their SIP passwords, could only be served in clear; turn HTTPS on (https_listen = \":443\"), or make each an explicit exception (cleartext_phones or cleartext_models)", strings.Join(clear, ", "))
	}
}

func old3xx(model string) bool {
	return len(model) == 7 && strings.HasPrefix(model, "snom3") && model[5] >= '0' && model[5] <= '9'
}

func (sec *security) exempt(m phone.MAC, model string) bool {
	return sec.cleartextPhones[m] || model != "" && sec.cleartextModels[model]
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New(file + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}

// loadPair loads tls_cert and tls_key, saying which of the two is wrong.
func loadPair(certFile, keyFile string) (*tls.Certificate, *field.Error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, field.Errorf("tls_cert", "%v", err)
	}
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		return nil, field.Errorf("tls_cert", "%s is not a PEM certificate (-----BEGIN CERTIFICATE-----)", certFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, field.Errorf("tls_key", "%v", err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || !strings.HasSuffix(b.Type, "PRIVATE KEY") {
		return nil, field.Errorf("tls_key", "%s is not a PEM private key (-----BEGIN PRIVATE KEY-----)", keyFile)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, field.Errorf("tls_key", "%s does not go with the certificate %s: %v", keyFile, certFile, err)
	}
	return &c, nil
}

// fromProxy believes a trusted proxy's X-Forwarded-For (the last address
// it did not add itself) and X-Forwarded-Proto.
func (sec *security) fromProxy(req *request, r *http.Request) {
	if len(sec.trusted) == 0 || !req.ip.IsValid() || !inAny(sec.trusted, req.ip) {
		return
	}
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		req.tls = strings.EqualFold(proto, "https")
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			ip, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return // unparsable: keep the proxy's address
			}
			req.ip = ip.Unmap()
			if !inAny(sec.trusted, req.ip) {
				return
			}
		}
	}
}

func inAny(nets []netip.Prefix, ip netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// refuseClient applies allowed_networks to a request for a phone file.
func (sec *security) refuseClient(ip netip.Addr) string {
	if len(sec.allowed) == 0 || ip.IsValid() && inAny(sec.allowed, ip) {
		return ""
	}
	return "http.allowed_networks does not hold " + ip.String()
}

// ownFile decides whether the configured phone mac's own file may be
// served on req. withhold: serve the bootstrap instead (plain HTTP, HTTPS
// on); reason: refuse with 404 (logged, rate-limited, by notFound).
func (sec *security) ownFile(req *request, mac phone.MAC, model string, now time.Time) (withhold bool, reason string) {
	if !req.tls {
		if sec.exempt(mac, model) {
			return false, ""
		}
		if !sec.httpsOn {
			if !sec.secret[mac] {
				return false, "" // nothing secret to protect, and nowhere to move it
			}
			return false, "a phone's own file is served only over HTTPS (through http.trusted_proxies here, https_listen is empty); this request came in plain HTTP"
		}
		return true, ""
	}
	if sec.clientCert == ClientCertOff || !req.direct {
		return false, ""
	}
	if len(req.peerCerts) == 0 {
		if sec.clientCert == ClientCertRequire {
			return false, "http.client_cert = require and the phone sent no certificate (the old 3xx series has none: list it in cleartext_phones, or use optional)"
		}
		return false, ""
	}
	leaf := req.peerCerts[0]
	inter := x509.NewCertPool()
	for _, c := range req.peerCerts[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: sec.clientCAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return false, "the client certificate does not chain to http.client_ca: " + err.Error()
	}
	got, ok := CertMAC(leaf)
	if !ok {
		return false, "the client certificate names no MAC (its subject CN is " + quote(leaf.Subject.CommonName) + ", not 12 hex digits)"
	}
	if got != mac {
		return false, "the client certificate is phone " + got.String() + "'s, not " + mac.String() + "'s"
	}
	return false, ""
}

// CertMAC reads the MAC a Snom device certificate carries: its subject
// common name is the phone's MAC as 12 hex digits (see "How secrets are
// protected" in docs/configuration.md for the evidence and its limits).
func CertMAC(c *x509.Certificate) (phone.MAC, bool) {
	cn := c.Subject.CommonName
	if len(cn) != 12 {
		return phone.MAC{}, false
	}
	m, err := phone.ParseMAC(cn)
	return m, err == nil
}

// httpsSettingURL is where the bootstrap moves a phone: http.url with
// https and the HTTPS port, or https://<the host it asked>:<port>/.
func (st *state) httpsSettingURL(req *request, port int) string {
	hostPort := func(host string) string {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		}
		if port == 443 || port == 0 {
			if strings.Contains(host, ":") {
				return "[" + host + "]"
			}
			return host
		}
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	if raw := st.tpl.Raw; raw != "" {
		rest, ok := strings.CutPrefix(raw, "http://")
		if !ok {
			return raw // already https://
		}
		host, path, _ := strings.Cut(rest, "/")
		userinfo := ""
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			userinfo, host = host[:at+1], host[at+1:]
		}
		return "https://" + userinfo + hostPort(host) + "/" + path
	}
	host := req.host
	if !validHost(host) {
		host = "localhost"
		if b := st.cat.DefaultBase(); b != "" {
			host = strings.TrimPrefix(b, "http://")
			if at := strings.LastIndexByte(host, '@'); at >= 0 {
				host = host[at+1:]
			}
		}
	}
	return provision.BaseFor("https", hostPort(host), st.userinfo) + "/"
}

// bindTLS opens the HTTPS listener. The certificate and whether to ask
// for the phone's are read at each handshake, so a reload changes them.
func (s *Server) bindTLS(ctx context.Context, st *state) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", st.opts.HTTPSListen)
	if err != nil {
		return nil, fmt.Errorf("listening on http.https_listen %q: %w; stop the other server on that port, change http.https_listen, or set it to \"\" to turn HTTPS off", st.opts.HTTPSListen, err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		s.tlsPort.Store(int32(ap.Port()))
	}
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
	withClient := base.Clone()
	// The certificate is checked by the handler (ownFile), which can say
	// why it refuses; the handshake only asks for it.
	withClient.ClientAuth = tls.RequestClientCert
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if s.state.Load().sec.clientCert != ClientCertOff {
			return withClient, nil
		}
		return nil, nil
	}
	return tls.NewListener(ln, base), nil
}

// TLSAddr is the bound HTTPS address (after Bind), or nil.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// ownFileAnswer applies the security policy to a request for configured
// phone mac's own file: decided is false when the file may be served.
func ownFileAnswer(st *state, req *request, id *identity, mac phone.MAC) (a answer, decided bool) {
	// The exception follows the configured model: the path's or the
	// User-Agent's type is the requester's word.
	model := st.cat.PhoneModel(mac)
	if model == "" {
		model = id.model
	}
	withhold, reason := st.sec.ownFile(req, mac, model, time.Now())
	if reason != "" {
		return answer{status: http.StatusNotFound, reason: reason}, true
	}
	if !withhold {
		return answer{}, false
	}
	u := st.httpsSettingURL(req, req.httpsPort)
	doc := st.bootstrapDoc(u)
	a = answer{status: http.StatusOK, doc: doc, bootstrap: true,
		reason: "bootstrap: own file withheld over plain HTTP (it is served only over HTTPS); setting_server moved to " + redact.URL(u)}
	if notModified(req, doc.ETag, st.cat.Loaded()) {
		a.status = http.StatusNotModified
	}
	return a, true
}

// bootstrapDoc renders the bootstrap for u, keeping the last one: nearly
// every phone asks by the same host.
func (st *state) bootstrapDoc(u string) provision.Doc {
	if b := st.lastBoot.Load(); b != nil && b.url == u {
		return b.doc
	}
	b := &bootDoc{url: u, doc: provision.Bootstrap(u, st.trust)}
	st.lastBoot.Store(b)
	return b.doc
}

type bootDoc struct {
	url string
	doc provision.Doc
}

// redirectHTTPS sends a plain-HTTP request for the status page, API or
// metrics to the same path on HTTPS (308 keeps the method).
func redirectHTTPS(w http.ResponseWriter, r *http.Request, req *request, st *state) {
	u := strings.TrimSuffix(st.httpsSettingURL(&request{host: req.host}, req.httpsPort), "/")
	if st.tpl.Raw != "" { // http.url may name a path: keep only scheme and host
		if i := strings.Index(u[len("https://"):], "/"); i >= 0 {
			u = u[:len("https://")+i]
		}
	}
	if at := strings.Index(u, "@"); at >= 0 { // no Basic-auth userinfo in a redirect
		u = "https://" + u[at+1:]
	}
	http.Redirect(w, r, u+r.URL.RequestURI(), http.StatusPermanentRedirect)
}

// LoadCertificate swaps the HTTPS certificate for the pair in certFile and
// keyFile (a renewed one); connections already open keep theirs.
func (s *Server) LoadCertificate(certFile, keyFile string) error {
	c, ferr := loadPair(certFile, keyFile)
	if ferr != nil {
		return ferr
	}
	s.cert.Store(c)
	return nil
}
