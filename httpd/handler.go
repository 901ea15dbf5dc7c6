package httpd

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
	"github.com/snomprov/snomprov/rollout"
)

// Header values shared by every response; net/http only reads them.
var (
	xmlContentType    = []string{"application/xml; charset=utf-8"}
	binaryContentType = []string{"application/octet-stream"}
	noCache           = []string{"no-cache"}
)

// request is what the provisioning decision reads from an HTTP request
// (fromHTTP): the decision is a function of these fields alone.
type request struct {
	method, path, rawQuery, host string
	userAgent, authorization     string
	ifNoneMatch, ifModifiedSince string
	ip                           netip.Addr // the requester, unmapped; invalid if unknown
	tls                          bool       // HTTPS, here or at a trusted proxy
	direct                       bool       // TLS terminated here (peerCerts are the phone's)
	peerCerts                    []*x509.Certificate
	httpsPort                    int // the bound HTTPS port, for the bootstrap
}

func fromHTTP(r *http.Request) request {
	h := r.Header
	req := request{
		method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, host: r.Host,
		userAgent: h.Get("User-Agent"), authorization: h.Get("Authorization"),
		ifNoneMatch: h.Get("If-None-Match"), ifModifiedSince: h.Get("If-Modified-Since"),
		tls: r.TLS != nil, direct: r.TLS != nil,
	}
	if r.TLS != nil {
		req.peerCerts = r.TLS.PeerCertificates
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		req.ip = ap.Addr().Unmap()
	}
	return req
}

// identity is who the request says it comes from.
type identity struct {
	mac      phone.MAC
	model    string
	firmware string
	ip       netip.Addr
	// target is the firmware the served settings point at (for the
	// inventory's up-to-date state); set only for settings files.
	target string
	// uaMAC is set when the User-Agent names another MAC than the request.
	uaMAC phone.MAC
	// lanMAC is set when the requester's MAC on the LAN is not the MAC of
	// the configured phone whose file it asks for (http.verify_mac).
	lanMAC phone.MAC
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverPanic(r)
	st := s.state.Load()
	req := fromHTTP(r)
	st.sec.fromProxy(&req, r)
	req.httpsPort = int(s.tlsPort.Load())
	rt := route(req.path, &st.tpl)
	fileName := ""
	if rt.Kind == RouteOther {
		if name := strings.TrimPrefix(req.path, "/"); st.filesRoot != nil && name != "" {
			if f, err := st.filesRoot.Open(name); err == nil {
				f.Close()
				fileName = name
			}
		}
		if fileName == "" && rt.Reason == "" && st.opts.Extra != nil {
			// Status page and metrics carry their own access control;
			// with HTTPS on they are served there, so the admin password
			// is never asked for in clear.
			if st.sec.httpsOn && !req.tls {
				redirectHTTPS(w, r, &req, st)
				return
			}
			s.serveExtra(w, r, st)
			return
		}
	}
	// Phones only GET; other methods go to Extra (the status page's
	// actions are POSTs), which answers them itself.
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	id := identify(&req, st, &rt)
	s.warnMismatch(&req, id)
	if !st.checkAuth(&req) {
		w.Header().Set("WWW-Authenticate", `Basic realm="snomprov"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		s.record(&req, id, stepFor(rt.Kind), http.StatusUnauthorized, 0, "wrong or missing HTTP Basic credentials")
		return
	}
	if reason := st.sec.refuseClient(req.ip); reason != "" && rt.Kind != RouteReject {
		s.notFound(w, &req, id, stepFor(rt.Kind), rt.Pattern, reason)
		return
	}
	switch rt.Kind {
	case RouteReject:
		s.notFound(w, &req, id, stepFor(rt.Kind), rt.Pattern, rt.Reason)
	case RouteGeneral, RoutePhone, RouteCombined, RouteFirmwareFile, RoutePart:
		s.serveSettings(w, &req, st, rt, id)
	case RouteFirmwareImage:
		if reason := denied(st, id); reason != "" {
			s.notFound(w, &req, id, inventory.StepFirmwareImage, rt.Pattern, reason)
			return
		}
		if d := st.opts.Firmware.Decide(id.mac, nil); !d.Serve {
			s.notFound(w, &req, id, inventory.StepFirmwareImage, rt.Pattern, d.Reason)
			return
		}
		if st.fwRoot == nil {
			s.notFound(w, &req, id, inventory.StepFirmwareImage, rt.Pattern, st.fwErr)
			return
		}
		s.serveFile(w, r, &req, st.fwRoot, rt.Name, id, inventory.StepFirmwareImage, rt.Pattern)
	default:
		if fileName != "" {
			if reason := denied(st, id); reason != "" {
				s.notFound(w, &req, id, inventory.StepFile, "files_dir", reason)
				return
			}
			s.serveFile(w, r, &req, st.filesRoot, fileName, id, inventory.StepFile, "files_dir")
			return
		}
		reason := rt.Reason
		if reason == "" {
			reason = "no provisioning file or configured file has this name"
		}
		s.notFound(w, &req, id, inventory.StepFile, rt.Pattern, reason)
	}
}

// recoverPanic logs a panic while answering r at Error (net/http would log
// it on ErrorLog, which is at Debug for TLS noise) and then aborts the
// request as net/http does: the connection is closed, the server goes on.
func (s *Server) recoverPanic(r *http.Request) {
	v := recover()
	if v == nil || v == http.ErrAbortHandler {
		if v != nil {
			panic(v)
		}
		return
	}
	s.log.Error("panic while serving a request; its connection is closed", "path", safePath(r.URL.Path), "ip", r.RemoteAddr,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	panic(http.ErrAbortHandler)
}

// serveExtra hands a path no phone file has to Extra, and still logs the
// 404 a phone (or scanner) gets there.
func (s *Server) serveExtra(w http.ResponseWriter, r *http.Request, st *state) {
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	st.opts.Extra.ServeHTTP(cw, r)
	if cw.status == http.StatusNotFound {
		if ok, dropped := s.warn.allow(); ok {
			s.log.Warn("404", "path", safePath(r.URL.Path), "reason", "no provisioning file, files_dir file or status page has this name",
				"ip", r.RemoteAddr, "suppressed", dropped)
		}
	}
}

// identify merges what the path, ?mac= and the User-Agent say. The path
// wins over ?mac=, which wins over the User-Agent. It has no side effects.
func identify(req *request, st *state, rt *Route) identity {
	id := identity{ip: req.ip}
	ua, uaOK := phone.ParseUserAgent(req.userAgent)
	var queryMAC phone.MAC
	if req.rawQuery != "" {
		q, _ := url.ParseQuery(req.rawQuery) // like net/http: keep what parses
		if v := q.Get("mac"); v != "" {
			if m, err := phone.ParseMAC(v); err == nil {
				queryMAC = m
			}
		}
		// A {mac} in http.url's query names the parameter to read.
		for key, ph := range st.tpl.Query {
			if ph == provision.PlaceholderMAC && !rt.HasMAC {
				if m, err := phone.ParseMAC(q.Get(key)); err == nil {
					rt.MAC, rt.HasMAC = m, true
				}
			}
		}
	}
	switch {
	case rt.HasMAC:
		id.mac = rt.MAC
	case !queryMAC.IsZero():
		id.mac = queryMAC
	case uaOK:
		id.mac = ua.MAC
	}
	if uaOK && !ua.MAC.IsZero() && !id.mac.IsZero() && ua.MAC != id.mac {
		id.uaMAC = ua.MAC
	}
	id.model = rt.Model
	if id.model == "" && uaOK {
		id.model = ua.Model
	}
	if id.model == "" && !id.mac.IsZero() {
		id.model = st.cat.PhoneModel(id.mac)
	}
	if uaOK {
		id.firmware = ua.Firmware
	}
	if id.firmware == "" {
		id.firmware = rt.Firmware
	}
	return id
}

// warnMismatch logs a User-Agent naming another MAC than the request.
func (s *Server) warnMismatch(req *request, id identity) {
	if id.uaMAC.IsZero() {
		return
	}
	if ok, dropped := s.warn.allow(); ok {
		s.log.Warn("User-Agent MAC differs from the MAC in the request; serving the request's MAC",
			"path", safePath(req.path), "path_mac", id.mac.String(), "ua_mac", id.uaMAC.String(), "ip", id.ip, "suppressed", dropped)
	}
}

// denied applies unknown_phones = deny: only configured MACs get anything.
func denied(st *state, id identity) string {
	if st.opts.UnknownPhones != provision.UnknownDeny {
		return ""
	}
	if id.mac.IsZero() {
		return "unknown_phones = deny and the request names no MAC (User-Agent, path or ?mac=)"
	}
	if !st.cat.HasPhone(id.mac) {
		return "unknown_phones = deny and MAC " + id.mac.String() + " is not in [[phones]]"
	}
	return ""
}

// answer is the decision on a settings-file request: 200 with doc, 304,
// or 404 with a reason. Computing it has no side effects.
type answer struct {
	status int
	doc    provision.Doc
	reason string
	// bootstrap: doc is the secret-free file that moves the phone to
	// HTTPS, in place of its own file (plain HTTP).
	bootstrap bool
}

func settingsAnswer(st *state, req *request, rt Route, id *identity) answer {
	if reason := denied(st, *id); reason != "" {
		return answer{status: http.StatusNotFound, reason: reason}
	}
	base := st.base(req)
	var doc provision.Doc
	switch rt.Kind {
	case RouteGeneral:
		doc = st.cat.General(base, id.model)
	case RouteCombined:
		if id.mac.IsZero() {
			return answer{status: http.StatusNotFound, reason: "http.url holds {mac} but the request carries no MAC"}
		}
		if st.cat.HasPhone(id.mac) {
			if reason := checkLANMAC(st, id, id.mac); reason != "" {
				return answer{status: http.StatusNotFound, reason: reason}
			}
			if a, decided := ownFileAnswer(st, req, id, id.mac); decided {
				return a
			}
		}
		doc = st.cat.Combined(base, id.model, id.mac)
	case RoutePhone:
		var ok bool
		doc, ok = st.cat.Phone(base, rt.MAC)
		if !ok {
			if st.opts.UnknownPhones != provision.UnknownAllow {
				return answer{status: http.StatusNotFound, reason: "per-MAC file 404: MAC " + rt.MAC.String() + " not in config (unknown_phones = " + st.opts.UnknownPhones + ")"}
			}
			doc = st.cat.EmptyPhone(base)
		} else if reason := checkLANMAC(st, id, rt.MAC); reason != "" {
			return answer{status: http.StatusNotFound, reason: reason}
		} else if a, decided := ownFileAnswer(st, req, id, rt.MAC); decided {
			return a
		}
	case RouteFirmwareFile:
		f, ok := st.cat.FirmwareFor(id.mac, rt.Model)
		if !ok {
			return answer{status: http.StatusNotFound, reason: "phone type " + rt.Model + " has no firmware configured ([models." + rt.Model + "] firmware)"}
		}
		// What the file says changes without a reload (a rollout moves on,
		// the loop guard holds or releases): only its ETag tells a copy
		// the phone has from the current one.
		fresh := *req
		fresh.ifModifiedSince = ""
		var reason string
		if d := st.opts.Firmware.Decide(id.mac, f.Rollout); d.Serve {
			doc, reason = st.cat.FirmwareDoc(base, f), rollout.PointsAt+phone.ImageName(f.Image)
		} else {
			doc, reason = st.cat.KeepFirmware(d.Reason), d.Reason
		}
		if notModified(&fresh, doc.ETag, st.cat.Loaded()) {
			return answer{status: http.StatusNotModified, doc: doc}
		}
		return answer{status: http.StatusOK, doc: doc, reason: reason}
	case RoutePart:
		var ok bool
		doc, ok = st.cat.Part(base, rt.Name)
		if !ok {
			return answer{status: http.StatusNotFound, reason: "no <setting-files> file of this configuration lists " + provision.PartPrefix + rt.Name}
		}
		if rt.HasMAC {
			if reason := checkLANMAC(st, id, rt.MAC); reason != "" {
				return answer{status: http.StatusNotFound, reason: reason}
			}
		}
	}
	if rt.Kind != RouteFirmwareFile {
		switch v, managed := st.cat.FirmwareTargetFor(id.mac, id.model); {
		case !managed:
			id.target = inventory.FirmwareUnmanaged
		default:
			id.target = v
		}
	}
	if notModified(req, doc.ETag, st.cat.Loaded()) {
		return answer{status: http.StatusNotModified, doc: doc}
	}
	return answer{status: http.StatusOK, doc: doc}
}

// checkLANMAC applies http.verify_mac to a request for the configured
// phone want's own file: it notes in id a requester whose MAC on the LAN
// is another, and with enforce returns why the file is refused.
func checkLANMAC(st *state, id *identity, want phone.MAC) string {
	if st.opts.VerifyMAC == VerifyOff || st.opts.LANMAC == nil || !id.ip.IsValid() {
		return ""
	}
	got, ok := st.opts.LANMAC(id.ip)
	if !ok || got == want {
		return ""
	}
	id.lanMAC = got
	if st.opts.VerifyMAC != VerifyEnforce {
		return ""
	}
	return "http.verify_mac = enforce: " + id.ip.String() + " has MAC " + got.String() + " on the LAN, not " + want.String() + "; a phone's own file goes only to that phone"
}

// warnLANMAC logs, once per device and phone, a phone's file served to a
// device with another MAC (http.verify_mac = log).
func (s *Server) warnLANMAC(req *request, id identity) {
	if id.lanMAC.IsZero() || !s.lanWarned.first(id.lanMAC, id.mac, time.Now()) {
		return
	}
	if ok, dropped := s.warn.allow(); ok {
		s.log.Warn("a phone's own file, with its SIP credentials, was fetched by a device with another MAC on the LAN (http.verify_mac = enforce refuses this)",
			"path", safePath(req.path), "phone_mac", id.mac.String(), "device_mac", id.lanMAC.String(), "ip", id.ip, "suppressed", dropped)
	}
}

// dedupe remembers (device, phone) pairs for a while so a repeated
// warning is logged once.
type dedupe struct {
	mu   sync.Mutex
	seen map[[2]phone.MAC]time.Time
}

const (
	dedupeFor  = 10 * time.Minute
	dedupeKeep = 4096 // pairs remembered at most; then it starts over
)

func (d *dedupe) first(a, b phone.MAC, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := [2]phone.MAC{a, b}
	if t, ok := d.seen[key]; ok && now.Sub(t) < dedupeFor {
		return false
	}
	if d.seen == nil || len(d.seen) >= dedupeKeep {
		d.seen = make(map[[2]phone.MAC]time.Time)
	}
	d.seen[key] = now
	return true
}

func (s *Server) serveSettings(w http.ResponseWriter, req *request, st *state, rt Route, id identity) {
	step := stepFor(rt.Kind)
	a := settingsAnswer(st, req, rt, &id)
	if a.status == http.StatusNotFound {
		s.notFound(w, req, id, step, rt.Pattern, a.reason)
		return
	}
	s.warnLANMAC(req, id)
	h := w.Header()
	h["Content-Type"] = xmlContentType
	h["Cache-Control"] = noCache
	h["Etag"] = a.doc.ETagHeader
	h["Last-Modified"] = st.lastModified
	if a.status == http.StatusNotModified {
		w.WriteHeader(http.StatusNotModified)
		s.record(req, id, step, http.StatusNotModified, 0, "")
		return
	}
	h["Content-Length"] = a.doc.LengthHeader
	w.WriteHeader(http.StatusOK)
	if req.method != http.MethodHead {
		w.Write(a.doc.Body)
	}
	if a.bootstrap {
		step = inventory.StepBootstrap
	}
	s.record(req, id, step, http.StatusOK, len(a.doc.Body), a.reason)
}

// notModified applies RFC 9110's order: If-None-Match decides when present,
// else If-Modified-Since against the catalog's load time.
func notModified(req *request, etag string, loaded time.Time) bool {
	if match := req.ifNoneMatch; match != "" {
		return etagMatch(match, etag)
	}
	if since := req.ifModifiedSince; since != "" {
		t, err := http.ParseTime(since)
		return err == nil && !loaded.After(t)
	}
	return false
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// serveFile serves a file from an os.Root with HEAD, Range, If-None-Match
// and If-Modified-Since (http.ServeContent). os.Root refuses names that
// leave the directory, including through symlinks.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, req *request, root *os.Root, name string, id identity, step inventory.Step, pattern string) {
	f, err := root.Open(name)
	if err != nil {
		reason := "no such file in " + root.Name()
		if !errors.Is(err, fs.ErrNotExist) {
			reason = "refused: " + trimRootErr(err)
		}
		s.notFound(w, req, id, step, pattern, reason)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.notFound(w, req, id, step, pattern, "not a regular file (directories are not listed)")
		return
	}
	h := w.Header()
	h["Etag"] = []string{`"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + `"`}
	if step == inventory.StepFirmwareImage {
		h["Content-Type"] = binaryContentType
	}
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
	s.record(req, id, step, cw.status, int(cw.n), "")
}

func trimRootErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// notFound answers 404 and says, at Warn (rate-limited), which pattern the
// path almost matched and why it failed.
func (s *Server) notFound(w http.ResponseWriter, req *request, id identity, step inventory.Step, pattern, reason string) {
	http.Error(w, "404 not found: "+reason, http.StatusNotFound)
	if ok, dropped := s.warn.allow(); ok {
		attrs := []slog.Attr{
			slog.String("path", safePath(req.path)),
			slog.String("reason", reason),
			slog.String("ip", id.ip.String()),
		}
		if pattern != "" {
			attrs = append(attrs, slog.String("pattern", pattern))
		}
		if !id.mac.IsZero() {
			attrs = append(attrs, slog.String("mac", id.mac.String()))
		}
		if dropped > 0 {
			attrs = append(attrs, slog.Int64("suppressed", dropped))
		}
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "404", attrs...)
	}
	s.record(req, id, step, http.StatusNotFound, 0, reason)
}

// safePath bounds a hostile path before it reaches a log line. The query
// is never logged: it may carry credentials.
func safePath(p string) string {
	if len(p) > 200 {
		return p[:200] + "…"
	}
	return p
}

func stepFor(k RouteKind) inventory.Step {
	switch k {
	case RouteGeneral:
		return inventory.StepGeneral
	case RoutePhone, RouteCombined:
		return inventory.StepPhone
	case RoutePart:
		return inventory.StepFile
	case RouteFirmwareFile:
		return inventory.StepFirmwareFile
	case RouteFirmwareImage:
		return inventory.StepFirmwareImage
	}
	return inventory.StepFile
}

// record reports one request: "GET /snomD785-000413A11FA7.htm 200 812B",
// with what was decided after a colon ("GET /snomD785-firmware.htm 200
// 190B: points at snomD785-10.1.73.4-SIP-r.bin"), or for a failure the
// reason ("GET /x 404: why").
func (s *Server) record(req *request, id identity, step inventory.Step, status, n int, reason string) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "method", req.method, "path", safePath(req.path), "status", status, "bytes", n,
			"mac", id.mac.String(), "model", id.model, "ip", id.ip.String())
	}
	// MAC-less requests are reported too: the metrics count them, the
	// inventory (per phone) drops them.
	kind := inventory.HTTPKind(status)
	// One allocation: the Builder's bytes become the string.
	var b strings.Builder
	b.Grow(32 + len(req.path) + len(reason))
	b.WriteString(req.method)
	b.WriteByte(' ')
	b.WriteString(safePath(req.path))
	b.WriteByte(' ')
	b.WriteString(string(kind))
	if status < 400 {
		var num [20]byte
		b.WriteByte(' ')
		b.Write(strconv.AppendInt(num[:0], int64(n), 10))
		b.WriteByte('B')
	}
	if reason != "" {
		b.WriteString(": ")
		b.WriteString(reason)
	}
	s.rec.Record(inventory.Observation{
		MAC:            id.mac,
		Model:          id.model,
		Firmware:       id.firmware,
		FirmwareTarget: id.target,
		IP:             id.ip,
		Event: inventory.Event{
			Time:   time.Now(),
			Step:   step,
			Kind:   kind,
			OK:     status < 400,
			Detail: b.String(),
		},
	})
}
