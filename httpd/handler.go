package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// Header values shared by every response; net/http only reads them.
var (
	xmlContentType    = []string{"application/xml; charset=utf-8"}
	binaryContentType = []string{"application/octet-stream"}
	noCache           = []string{"no-cache"}
)

// identity is who the request says it comes from.
type identity struct {
	mac      phone.MAC
	model    string
	firmware string
	ip       netip.Addr
	// target is the firmware the served settings point at (for the
	// inventory's up-to-date state); set only for settings files.
	target string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	rt := route(r.URL.Path, &st.tpl)
	if rt.Kind == RouteAPIPhones && st.opts.Inventory == nil {
		rt.Kind = RouteOther // the status handler (Extra) may serve it
	}
	fileName := ""
	if rt.Kind == RouteOther {
		if name := strings.TrimPrefix(r.URL.Path, "/"); st.filesRoot != nil && name != "" {
			if f, err := st.filesRoot.Open(name); err == nil {
				f.Close()
				fileName = name
			}
		}
		if fileName == "" && rt.Reason == "" && st.opts.Extra != nil {
			// Status page and metrics carry their own access control.
			s.serveExtra(w, r, st)
			return
		}
	}
	id := s.identify(r, st, &rt)
	if !st.checkAuth(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="snomprov"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		s.record(r, id, stepFor(rt.Kind), http.StatusUnauthorized, 0, "wrong or missing HTTP Basic credentials")
		return
	}
	switch rt.Kind {
	case RouteReject:
		s.notFound(w, r, id, stepFor(rt.Kind), rt.Pattern, rt.Reason)
	case RouteAPIPhones:
		s.servePhones(w, r, st)
	case RouteGeneral, RoutePhone, RouteCombined, RouteFirmwareFile:
		s.serveSettings(w, r, st, rt, id)
	case RouteFirmwareImage:
		if reason := s.denied(st, id); reason != "" {
			s.notFound(w, r, id, inventory.StepFirmwareImage, rt.Pattern, reason)
			return
		}
		if st.fwRoot == nil {
			s.notFound(w, r, id, inventory.StepFirmwareImage, rt.Pattern, st.fwErr)
			return
		}
		s.serveFile(w, r, st.fwRoot, rt.Name, id, inventory.StepFirmwareImage, rt.Pattern)
	default:
		if fileName != "" {
			if reason := s.denied(st, id); reason != "" {
				s.notFound(w, r, id, inventory.StepFile, "files_dir", reason)
				return
			}
			s.serveFile(w, r, st.filesRoot, fileName, id, inventory.StepFile, "files_dir")
			return
		}
		reason := rt.Reason
		if reason == "" {
			reason = "no provisioning file or configured file has this name"
		}
		s.notFound(w, r, id, inventory.StepFile, rt.Pattern, reason)
	}
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
// wins over ?mac=, which wins over the User-Agent.
func (s *Server) identify(r *http.Request, st *state, rt *Route) identity {
	var id identity
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		id.ip = ap.Addr().Unmap()
	}
	ua, uaOK := phone.ParseUserAgent(r.Header.Get("User-Agent"))
	var queryMAC phone.MAC
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
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
		if ok, dropped := s.warn.allow(); ok {
			s.log.Warn("User-Agent MAC differs from the MAC in the request; serving the request's MAC",
				"path", r.URL.Path, "path_mac", id.mac.String(), "ua_mac", ua.MAC.String(), "ip", id.ip, "suppressed", dropped)
		}
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

// denied applies unknown_phones = deny: only configured MACs get anything.
func (s *Server) denied(st *state, id identity) string {
	if st.opts.UnknownPhones != UnknownDeny {
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

func (s *Server) serveSettings(w http.ResponseWriter, r *http.Request, st *state, rt Route, id identity) {
	step := stepFor(rt.Kind)
	if reason := s.denied(st, id); reason != "" {
		s.notFound(w, r, id, step, rt.Pattern, reason)
		return
	}
	base := st.base(r)
	var doc provision.Doc
	switch rt.Kind {
	case RouteGeneral:
		doc = st.cat.General(base, id.model)
	case RouteCombined:
		if id.mac.IsZero() {
			s.notFound(w, r, id, step, rt.Pattern, "http.url holds {mac} but the request carries no MAC")
			return
		}
		doc = st.cat.Combined(base, id.model, id.mac)
	case RoutePhone:
		var ok bool
		doc, ok = st.cat.Phone(base, rt.MAC)
		if !ok {
			if st.opts.UnknownPhones != UnknownAllow {
				s.notFound(w, r, id, step, rt.Pattern, "per-MAC file 404: MAC "+rt.MAC.String()+" not in config (unknown_phones = "+st.opts.UnknownPhones+")")
				return
			}
			doc = st.cat.EmptyPhone(base)
		}
	case RouteFirmwareFile:
		var ok bool
		doc, ok = st.cat.Firmware(base, rt.Model)
		if !ok {
			s.notFound(w, r, id, step, rt.Pattern, "phone type "+rt.Model+" has no firmware configured ([models."+rt.Model+"] firmware)")
			return
		}
	}
	if rt.Kind != RouteFirmwareFile {
		switch v, managed := st.cat.FirmwareTarget(id.model); {
		case !managed:
			id.target = inventory.FirmwareUnmanaged
		default:
			id.target = v
		}
	}
	h := w.Header()
	h["Content-Type"] = xmlContentType
	h["Cache-Control"] = noCache
	h["Etag"] = doc.ETagHeader
	h["Last-Modified"] = st.lastModified
	if notModified(r, doc.ETag, st.cat.Loaded()) {
		w.WriteHeader(http.StatusNotModified)
		s.record(r, id, step, http.StatusNotModified, 0, "")
		return
	}
	h["Content-Length"] = doc.LengthHeader
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(doc.Body)
	}
	s.record(r, id, step, http.StatusOK, len(doc.Body), "")
}

// notModified applies RFC 9110's order: If-None-Match decides when present,
// else If-Modified-Since against the catalog's load time.
func notModified(r *http.Request, etag string, loaded time.Time) bool {
	if match := r.Header.Get("If-None-Match"); match != "" {
		return etagMatch(match, etag)
	}
	if since := r.Header.Get("If-Modified-Since"); since != "" {
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
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, root *os.Root, name string, id identity, step inventory.Step, pattern string) {
	f, err := root.Open(name)
	if err != nil {
		reason := "no such file in " + root.Name()
		if !errors.Is(err, fs.ErrNotExist) {
			reason = "refused: " + trimRootErr(err)
		}
		s.notFound(w, r, id, step, pattern, reason)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.notFound(w, r, id, step, pattern, "not a regular file (directories are not listed)")
		return
	}
	h := w.Header()
	h["Etag"] = []string{`"` + strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + `"`}
	if step == inventory.StepFirmwareImage {
		h["Content-Type"] = binaryContentType
	}
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
	s.record(r, id, step, cw.status, int(cw.n), "")
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

func (s *Server) servePhones(w http.ResponseWriter, r *http.Request, st *state) {
	if st.opts.Inventory == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	phones := st.opts.Inventory.Phones()
	if phones == nil {
		phones = []inventory.Phone{}
	}
	if err := enc.Encode(phones); err != nil {
		s.log.Debug("writing /api/phones", "err", err)
	}
}

// notFound answers 404 and says, at Warn (rate-limited), which pattern the
// path almost matched and why it failed.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request, id identity, step inventory.Step, pattern, reason string) {
	http.Error(w, "404 not found: "+reason, http.StatusNotFound)
	if ok, dropped := s.warn.allow(); ok {
		attrs := []slog.Attr{
			slog.String("path", safePath(r.URL.Path)),
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
	s.record(r, id, step, http.StatusNotFound, 0, reason)
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
	case RouteFirmwareFile:
		return inventory.StepFirmwareFile
	case RouteFirmwareImage:
		return inventory.StepFirmwareImage
	}
	return inventory.StepFile
}

var statusText = map[int]string{200: "200", 206: "206", 304: "304", 401: "401", 404: "404", 412: "412", 416: "416"}

// record reports one request: "GET /snomD785-000413A11FA7.htm 200 812B",
// or for a failure the reason.
func (s *Server) record(r *http.Request, id identity, step inventory.Step, status, n int, reason string) {
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("request", "method", r.Method, "path", safePath(r.URL.Path), "status", status, "bytes", n,
			"mac", id.mac.String(), "model", id.model, "ip", id.ip.String())
	}
	// MAC-less requests are reported too: the metrics count them, the
	// inventory (per phone) drops them.
	kind, ok := statusText[status]
	if !ok {
		kind = strconv.Itoa(status)
	}
	b := make([]byte, 0, 64+len(r.URL.Path)+len(reason))
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, safePath(r.URL.Path)...)
	b = append(b, ' ')
	b = append(b, kind...)
	if reason != "" {
		b = append(b, ": "...)
		b = append(b, reason...)
	} else {
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, 'B')
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
			Detail: string(b),
		},
	})
}
