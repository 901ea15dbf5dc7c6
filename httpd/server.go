// Package httpd is the provisioning HTTP(S) server: it answers the file
// names Snom phones ask for (seed, step 2 and 3) with the bytes provision
// pre-rendered, serves firmware images and optional static files from
// disk through os.Root, and records every request in the inventory.
//
// A request flows one way: path → route (pure) → identity (User-Agent,
// path, ?mac=) → unknown-phone policy → bytes → response + one inventory
// event.
package httpd

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
	"github.com/snomprov/snomprov/rollout"
)

// http.verify_mac values.
const (
	VerifyOff     = "off"
	VerifyLog     = "log"
	VerifyEnforce = "enforce"
)

// Options configure the server. cmd/snomprov fills them from [http].
type Options struct {
	Listen        string // host:port, e.g. ":80" or "127.0.0.1:0"
	URL           string // http.url; may be empty
	FirmwareDir   string // served under /firmware/; may be empty
	FilesDir      string // other files served verbatim; may be empty
	UnknownPhones string // generic (default) | deny | allow
	Username      string // HTTP Basic auth when set
	Password      string
	// HTTPSListen is the HTTPS listener beside Listen (plain HTTP);
	// empty: no HTTPS. TLSCert and TLSKey are its certificate chain and
	// key (configured, or the pair internal/tlsca made).
	HTTPSListen string
	TLSCert     string
	TLSKey      string
	// CleartextModels and CleartextPhones may get their own file over
	// plain HTTP (the explicit exceptions); everyone else gets it only
	// over HTTPS, and the bootstrap (setting_server -> HTTPS) over HTTP.
	CleartextModels []string
	CleartextPhones []phone.MAC
	// ClientCert (off | optional | require) asks for the phone's factory
	// certificate, which must chain to ClientCA (a PEM file) and name the
	// MAC whose own file is asked for.
	ClientCert string
	ClientCA   string
	// TrustedProxies may set X-Forwarded-For and X-Forwarded-Proto.
	TrustedProxies []netip.Prefix
	// AllowedNetworks, when not empty, are the only clients that get
	// phone files.
	AllowedNetworks []netip.Prefix
	// VerifyMAC (off | log | enforce; default off) compares LANMAC(the
	// requester's IP) with the MAC of a configured phone whose own file it
	// asks for. LANMAC answers false when it cannot tell (not on the LAN).
	VerifyMAC string
	LANMAC    func(netip.Addr) (phone.MAC, bool)
	Catalog   *provision.Catalog
	// Extra serves paths the router does not claim (status page, /metrics);
	// nil = 404.
	Extra http.Handler
	// Firmware decides whether a phone gets its firmware image now (the
	// staged rollout and the loop guard); nil: always.
	Firmware FirmwareGate
}

// FirmwareGate decides whether the phone mac gets its image now. r is the
// staged rollout the image goes out in; nil for an image without one
// (then only the loop guard may hold the phone).
type FirmwareGate interface {
	Decide(mac phone.MAC, r *rollout.Rollout) rollout.Decision
}

// alwaysServe is the gate of a server without one.
type alwaysServe struct{}

func (alwaysServe) Decide(phone.MAC, *rollout.Rollout) rollout.Decision {
	return rollout.Decision{Serve: true}
}

// Limits. Phones send small GETs; firmware images are tens of MB and may
// crawl over a busy LAN, hence the long write timeout.
const (
	maxHeaderBytes    = 8 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Minute
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
)

// state is everything a request needs, swapped whole on Reload so an
// in-flight request finishes on the options it started with.
type state struct {
	opts      Options
	cat       *provision.Catalog
	tpl       provision.URLTemplate
	fwRoot    *os.Root // nil: no firmware_dir (or missing)
	filesRoot *os.Root
	fwErr     string // why fwRoot is nil, for the 404 log
	userinfo  string // "user:pass" for base URLs when Basic auth is on
	authUser  []byte
	authPass  []byte
	// lastModified is the catalog's load time as a header value.
	lastModified []string
	sec          security
	lastBoot     atomic.Pointer[bootDoc]
	// trust is what the bootstrap hands phones to trust for HTTPS: the
	// certificates above the leaf in tls_cert's chain (the appliance's
	// CA), or the leaf itself when the file holds no chain. A renewed
	// leaf keeps its CA, so this stays true between reloads.
	trust [][]byte
	// lastBase caches the base URL of the last Host seen: nearly every
	// request names the same one.
	lastBase atomic.Pointer[hostBase]
}

type hostBase struct {
	host  string
	https bool
	base  string
}

// Server is the provisioning HTTP server.
type Server struct {
	log   *slog.Logger
	rec   inventory.Recorder
	state atomic.Pointer[state]
	cert  atomic.Pointer[tls.Certificate]
	warn  rateLimiter
	// lanWarned dedupes verify_mac warnings: one per device and phone.
	lanWarned dedupe

	ln      net.Listener // plain HTTP
	tlsLn   net.Listener // HTTPS; nil when off
	srv     *http.Server
	tlsPort atomic.Int32 // the bound HTTPS port, for the bootstrap's URL
}

// New checks the options (Prepare) and makes the server. Sockets are
// opened by Bind.
func New(o Options, log *slog.Logger, rec inventory.Recorder) (*Server, error) {
	p, err := Prepare(o)
	if err != nil {
		return nil, err
	}
	return p.NewServer(log, rec), nil
}

// Prepared is a checked Options with its directories opened and its
// certificate loaded: what a running server swaps in whole. A Prepared
// that is never used must be closed.
type Prepared struct {
	st   *state
	cert *tls.Certificate // nil without TLS
	// Warnings are problems that do not stop the server (a missing
	// firmware_dir: settings still work, images get 404).
	Warnings []*field.Error
}

// Options returns the prepared options, defaults filled in.
func (p *Prepared) Options() Options { return p.st.opts }

// Close releases the opened directories of a Prepared that was not used.
func (p *Prepared) Close() { p.st.closeRoots() }

// Routes reports whether path is a provisioning file this server answers
// (a settings file for some phone type or MAC, or a firmware file), as a
// phone would request it.
func (p *Prepared) Routes(path string) bool {
	switch route(path, &p.st.tpl).Kind {
	case RouteGeneral, RoutePhone, RouteCombined, RouteFirmwareFile:
		return true
	}
	return false
}

// NewServer makes a server from prepared options.
func (p *Prepared) NewServer(log *slog.Logger, rec inventory.Recorder) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rec == nil {
		rec = inventory.Discard
	}
	s := &Server{log: log, rec: rec}
	for _, w := range p.Warnings {
		s.log.Warn(w.Msg, "key", w.Key)
	}
	s.state.Store(p.st)
	if p.cert != nil {
		s.cert.Store(p.cert)
	}
	return s
}

func (st *state) tlsOn() bool { return st.opts.HTTPSListen != "" }

// Prepare checks the options, opens the served directories and loads the
// certificate: it is the only place the HTTP server's rules live. Errors
// are field.Errors keyed like [http].
func Prepare(o Options) (*Prepared, error) {
	var errs field.Errors
	if o.Catalog == nil {
		return nil, errors.New("no settings catalog; this is a bug in the caller")
	}
	if o.Listen == "" {
		errs.Add("listen", `is empty; set it to an address like ":80"`)
	} else {
		checkListen(&errs, "listen", o.Listen)
	}
	var ok bool
	if o.UnknownPhones, ok = enum(o.UnknownPhones, provision.UnknownGeneric, provision.UnknownDeny, provision.UnknownAllow); !ok {
		errs.Add("unknown_phones", "%s", field.NotOneOf(o.UnknownPhones, provision.UnknownGeneric, provision.UnknownDeny, provision.UnknownAllow))
	}
	if o.VerifyMAC, ok = enum(o.VerifyMAC, VerifyLog, VerifyOff, VerifyEnforce); !ok {
		errs.Add("verify_mac", "%s", field.NotOneOf(o.VerifyMAC, VerifyOff, VerifyLog, VerifyEnforce))
	}
	if o.Username != "" && o.Password == "" {
		errs.Add("username", "username is set but password is not; set both to protect the settings with Basic auth")
	}
	if o.Password != "" && o.Username == "" {
		errs.Add("password", "password is set but username is not; set both to protect the settings with Basic auth")
	}
	if o.TLSCert != "" && o.TLSKey == "" {
		errs.Add("tls_cert", "tls_cert is set but tls_key is not; set both to serve HTTPS")
	}
	if o.TLSKey != "" && o.TLSCert == "" {
		errs.Add("tls_key", "tls_key is set but tls_cert is not; set both to serve HTTPS")
	}
	tpl, err := provision.ParseURLTemplate(o.URL)
	if err != nil {
		errs.Add("url", "%v", err)
	}
	p := &Prepared{}
	sec := prepareSecurity(o, &errs, func(w *field.Error) { p.Warnings = append(p.Warnings, w) })
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if o.TLSCert != "" {
		c, ferr := loadPair(o.TLSCert, o.TLSKey)
		if ferr != nil {
			return nil, ferr
		}
		p.cert = c
	}
	if o.Firmware == nil {
		o.Firmware = alwaysServe{}
	}
	st := &state{opts: o, cat: o.Catalog, tpl: tpl, sec: sec,
		lastModified: []string{o.Catalog.Loaded().Format(http.TimeFormat)}}
	if p.cert != nil {
		st.trust = p.cert.Certificate[min(1, len(p.cert.Certificate)-1):]
	}
	if o.Username != "" {
		st.userinfo = url.UserPassword(o.Username, o.Password).String()
		st.authUser, st.authPass = []byte(o.Username), []byte(o.Password)
	}
	if o.FirmwareDir != "" {
		st.fwRoot, err = openRoot(o.FirmwareDir)
		if errors.Is(err, fs.ErrNotExist) {
			// Not fatal: settings still work; image requests say why they fail.
			st.fwErr = "http.firmware_dir " + o.FirmwareDir + " does not exist; create it and put the images there"
			p.Warnings = append(p.Warnings, field.Errorf("firmware_dir", "directory %s is missing; firmware images will get 404 until it is created", o.FirmwareDir))
		} else if err != nil {
			return nil, field.Errorf("firmware_dir", "%v", err)
		}
	} else {
		st.fwErr = "http.firmware_dir is not set"
	}
	if o.FilesDir != "" {
		st.filesRoot, err = openRoot(o.FilesDir)
		if err != nil {
			st.closeRoots()
			return nil, field.Errorf("files_dir", "%v; create it or leave files_dir out", err)
		}
	}
	p.st = st
	return p, nil
}

// enum returns v, or the first allowed value (the default) when v is
// empty; ok reports whether v is allowed.
func enum(v string, allowed ...string) (string, bool) {
	if v == "" {
		return allowed[0], true
	}
	return v, slices.Contains(allowed, v)
}

func openRoot(dir string) (*os.Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (st *state) closeRoots() { st.rootsCloser()() }

// Bind opens the listening sockets, plain HTTP and (when on) HTTPS;
// "address in use" surfaces here.
func (s *Server) Bind(ctx context.Context) error {
	st := s.state.Load()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", st.opts.Listen)
	if err != nil {
		return fmt.Errorf("listening on http.listen %q: %w; stop the other server on that port or change http.listen", st.opts.Listen, err)
	}
	if st.tlsOn() {
		if s.tlsLn, err = s.bindTLS(ctx, st); err != nil {
			ln.Close()
			return err
		}
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		// TLS handshake noise from scanners is not worth a Warn.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", false)
	if s.tlsLn != nil {
		s.log.Info("listening", "addr", s.tlsLn.Addr().String(), "tls", true)
	}
	return nil
}

// Addr is the bound plain-HTTP address (after Bind).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers requests on both listeners until ctx is done, then lets
// in-flight requests finish for up to 5 s. One net/http server serves
// both.
func (s *Server) Serve(ctx context.Context) error {
	if s.srv == nil {
		return errors.New("Serve called before Bind")
	}
	lns := []net.Listener{s.ln}
	if s.tlsLn != nil {
		lns = append(lns, s.tlsLn)
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- s.srv.Serve(ln) }()
	}
	running := len(lns)
	var failed error
	select {
	case err := <-errc:
		failed = err
		running--
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("requests still running after the shutdown grace period; closing them", "err", err)
		s.srv.Close()
	}
	for ; running > 0; running-- {
		<-errc
	}
	s.state.Load().closeRoots()
	return failed
}

// Reload checks new options and swaps them in (Prepare, then Apply).
func (s *Server) Reload(o Options) error {
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	if err := s.RestartNeeded(p); err != nil {
		p.Close()
		return err
	}
	s.Apply(p)
	return nil
}

// RestartNeeded reports, as an error, whether p changes what is bound to
// the socket: the listening address, or HTTP against HTTPS.
func (s *Server) RestartNeeded(p *Prepared) error {
	old := s.state.Load()
	if p.st.opts.Listen != old.opts.Listen || p.st.opts.HTTPSListen != old.opts.HTTPSListen {
		return fmt.Errorf("http.listen or http.https_listen changed (%s, %q to %s, %q); restart snomprov to apply it",
			old.opts.Listen, old.opts.HTTPSListen, p.st.opts.Listen, p.st.opts.HTTPSListen)
	}
	return nil
}

// Apply swaps prepared options and catalog in; it cannot fail. Requests
// already running finish on the old ones. The caller has refused what
// RestartNeeded reports: the listening address stays.
func (s *Server) Apply(p *Prepared) {
	old := s.state.Load()
	p.st.opts.Listen, p.st.opts.HTTPSListen = old.opts.Listen, old.opts.HTTPSListen
	for _, w := range p.Warnings {
		s.log.Warn(w.Msg, "key", w.Key)
	}
	if p.cert != nil {
		s.cert.Store(p.cert)
	}
	s.state.Store(p.st)
	// A request that loaded the old state may be about to open a file, so
	// its roots close later. The timer holds only the roots: holding old
	// would keep the previous catalog and config (megabytes for 1000
	// phones) alive for those 30 s, one more for every reload.
	time.AfterFunc(30*time.Second, old.rootsCloser())
}

// rootsCloser returns a func that closes st's roots and keeps nothing else
// of st alive.
func (st *state) rootsCloser() func() {
	fw, files := st.fwRoot, st.filesRoot
	return func() {
		if fw != nil {
			fw.Close()
		}
		if files != nil {
			files.Close()
		}
	}
}

// checkAuth compares in constant time.
func (st *state) checkAuth(req *request) bool {
	if st.authUser == nil {
		return true
	}
	u, p, ok := parseBasicAuth(req.authorization)
	if !ok {
		return false
	}
	uOK := subtle.ConstantTimeCompare([]byte(u), st.authUser)
	pOK := subtle.ConstantTimeCompare([]byte(p), st.authPass)
	return uOK&pOK == 1
}

// parseBasicAuth is net/http's Request.BasicAuth on a header value.
func parseBasicAuth(auth string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", "", false
	}
	c, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(c), ":")
}

// base is the URL the phone used, for the URLs written into files.
func (st *state) base(req *request) string {
	if b := st.cat.FixedBase(); b != "" {
		return b
	}
	https := req.tls
	if hb := st.lastBase.Load(); hb != nil && hb.host == req.host && hb.https == https {
		return hb.base
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	if !validHost(req.host) {
		if b := st.cat.DefaultBase(); b != "" {
			return b
		}
		return provision.BaseFor(scheme, "localhost", st.userinfo)
	}
	b := provision.BaseFor(scheme, req.host, st.userinfo)
	st.lastBase.Store(&hostBase{host: req.host, https: https, base: b})
	return b
}

func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// rateLimiter lets a burst of Warn lines through per second and counts the
// rest, so a scanner cannot flood the journal.
type rateLimiter struct {
	second     atomic.Int64
	count      atomic.Int64
	suppressed atomic.Int64
}

const warnsPerSecond = 20

// allow returns whether to log and how many lines were dropped before.
func (l *rateLimiter) allow() (bool, int64) {
	now := time.Now().Unix()
	if l.second.Load() != now {
		l.second.Store(now)
		l.count.Store(0)
	}
	if l.count.Add(1) > warnsPerSecond {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
