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

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// Unknown-phone policies (the values of http.unknown_phones).
const (
	UnknownGeneric = "generic"
	UnknownDeny    = "deny"
	UnknownAllow   = "allow"
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
	TLSCert       string // HTTPS when both are set
	TLSKey        string
	// VerifyMAC (off | log | enforce; default off) compares LANMAC(the
	// requester's IP) with the MAC of a configured phone whose own file it
	// asks for. LANMAC answers false when it cannot tell (not on the LAN).
	VerifyMAC string
	LANMAC    func(netip.Addr) (phone.MAC, bool)
	Catalog   *provision.Catalog
	// Extra serves paths the router does not claim (status page, /metrics);
	// nil = 404.
	Extra http.Handler
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

	ln  net.Listener
	srv *http.Server
}

// New checks the options and opens the served directories. Sockets are
// opened by Bind.
func New(o Options, log *slog.Logger, rec inventory.Recorder) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if rec == nil {
		rec = inventory.Discard
	}
	s := &Server{log: log.With("component", "http"), rec: rec}
	st, err := s.newState(o)
	if err != nil {
		return nil, err
	}
	if st.tlsOn() {
		if err := s.loadCert(o); err != nil {
			return nil, err
		}
	}
	s.state.Store(st)
	return s, nil
}

func (st *state) tlsOn() bool { return st.opts.TLSCert != "" && st.opts.TLSKey != "" }

func (s *Server) newState(o Options) (*state, error) {
	if o.Catalog == nil {
		return nil, errors.New("httpd: no settings catalog; this is a bug in the caller")
	}
	if o.Listen == "" {
		return nil, errors.New("httpd: http.listen is empty; set it to an address like \":80\"")
	}
	var ok bool
	if o.UnknownPhones, ok = enum(o.UnknownPhones, UnknownGeneric, UnknownDeny, UnknownAllow); !ok {
		return nil, fmt.Errorf("httpd: http.unknown_phones = %q; use generic, deny or allow", o.UnknownPhones)
	}
	if o.VerifyMAC, ok = enum(o.VerifyMAC, VerifyOff, VerifyLog, VerifyEnforce); !ok {
		return nil, fmt.Errorf("httpd: http.verify_mac = %q; use off, log or enforce", o.VerifyMAC)
	}
	if (o.Username == "") != (o.Password == "") {
		return nil, errors.New("httpd: http.username and http.password must be set together (or both left empty)")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("httpd: http.tls_cert and http.tls_key must be set together (or both left empty)")
	}
	tpl, err := provision.ParseURLTemplate(o.URL)
	if err != nil {
		return nil, fmt.Errorf("httpd: %w", err)
	}
	st := &state{opts: o, cat: o.Catalog, tpl: tpl,
		lastModified: []string{o.Catalog.Loaded().Format(http.TimeFormat)}}
	if o.Username != "" {
		st.userinfo = url.UserPassword(o.Username, o.Password).String()
		st.authUser, st.authPass = []byte(o.Username), []byte(o.Password)
	}
	if o.FirmwareDir != "" {
		st.fwRoot, err = openRoot(o.FirmwareDir)
		if errors.Is(err, fs.ErrNotExist) {
			// Not fatal: settings still work; image requests say why they fail.
			st.fwErr = "http.firmware_dir " + o.FirmwareDir + " does not exist; create it and put the images there"
			s.log.Warn("firmware directory missing; firmware images will get 404", "dir", o.FirmwareDir)
		} else if err != nil {
			return nil, fmt.Errorf("httpd: http.firmware_dir: %w", err)
		}
	} else {
		st.fwErr = "http.firmware_dir is not set"
	}
	if o.FilesDir != "" {
		st.filesRoot, err = openRoot(o.FilesDir)
		if err != nil {
			st.closeRoots()
			return nil, fmt.Errorf("httpd: http.files_dir: %w; create it or unset http.files_dir", err)
		}
	}
	return st, nil
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

func (s *Server) loadCert(o Options) error {
	c, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return fmt.Errorf("httpd: loading http.tls_cert %s and http.tls_key %s: %w", o.TLSCert, o.TLSKey, err)
	}
	s.cert.Store(&c)
	return nil
}

// Bind opens the listening socket; "address in use" surfaces here.
func (s *Server) Bind(ctx context.Context) error {
	st := s.state.Load()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", st.opts.Listen)
	if err != nil {
		return fmt.Errorf("httpd: listening on http.listen %q: %w; stop the other server on that port or change http.listen", st.opts.Listen, err)
	}
	if st.tlsOn() {
		ln = tls.NewListener(ln, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		})
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
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", st.tlsOn())
	return nil
}

// Addr is the bound address (after Bind).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers requests until ctx is done, then lets in-flight requests
// finish for up to 5 s.
func (s *Server) Serve(ctx context.Context) error {
	if s.srv == nil {
		return errors.New("httpd: Serve called before Bind")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	var failed error
	select {
	case err := <-errc:
		failed = fmt.Errorf("httpd: %w", err)
		errc = nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("requests still running after the shutdown grace period; closing them", "err", err)
		s.srv.Close()
	}
	if errc != nil {
		<-errc
	}
	s.state.Load().closeRoots()
	return failed
}

// Reload swaps options and catalog. Requests already running finish on
// the old ones. The listening address and HTTP/HTTPS choice stay until a
// restart.
func (s *Server) Reload(o Options) error {
	old := s.state.Load()
	st, err := s.newState(o)
	if err != nil {
		return err
	}
	if st.tlsOn() {
		if err := s.loadCert(o); err != nil {
			st.closeRoots()
			return err
		}
	}
	if o.Listen != old.opts.Listen || st.tlsOn() != old.tlsOn() {
		s.log.Warn("http.listen or TLS on/off changed; restart snomprov to apply it (the rest of the reload is applied)",
			"listen", old.opts.Listen, "new_listen", o.Listen)
		st.opts.Listen = old.opts.Listen
	}
	s.state.Store(st)
	// A request that loaded the old state may be about to open a file, so
	// its roots close later. The timer holds only the roots: holding old
	// would keep the previous catalog and config (megabytes for 1000
	// phones) alive for those 30 s, one more for every reload.
	time.AfterFunc(30*time.Second, old.rootsCloser())
	return nil
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
