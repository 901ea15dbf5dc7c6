// Package status is the installer's view of the appliance: a server-rendered
// status page (every phone, its derived state and why it failed, one phone's
// timeline and what it would be sent), the same data as JSON, and the
// Prometheus metrics endpoint. It is an http.Handler mounted on the HTTP
// listener for the paths the phone router does not claim; see
// docs/status-page.md for why it lives there.
package status

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/resync"
	"github.com/snomprov/snomprov/rollout"
)

// Inventory is what the page reads; *inventory.Store has it.
type Inventory interface {
	Phones() []inventory.Phone
	Phone(phone.MAC) (inventory.Phone, bool)
}

// File is one file a phone would receive. It has the fields of
// provision.File, so a []provision.File converts element by element with
// status.File(f).
type File struct {
	Path string
	Body []byte
}

// Component is one part of the server in the health box.
type Component struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Pool is one subnet's DHCP pool: its addresses in use and its size.
type Pool struct {
	Subnet      string // its network, "10.20.0.0/24"
	LAN         bool   // the LAN's own pool ([dhcp]'s); a lone LAN meter needs no name
	Used, Total int
}

// Options configure the handler. Every func may be nil: its box is then left
// out of the page.
type Options struct {
	Inventory Inventory
	// Preview returns the files the phone would get, secrets already masked.
	// model may be empty (then the phone's [[phones]] entry decides).
	Preview func(mac phone.MAC, model string) ([]File, error)
	// PoolUsage reports the DHCP pool of each subnet, the primary first (a
	// subnet without a pool is not listed); ok is false when DHCP is off.
	PoolUsage func() (pools []Pool, ok bool)
	// Health reports each server's state (bound, last error).
	Health func() []Component
	// AdminUser defaults to "admin". With AdminPassword empty the page is open.
	AdminUser, AdminPassword string
	// StaleAfter marks phones not seen for this long as stale; 0 disables it.
	StaleAfter time.Duration
	// Rollouts reports every staged firmware rollout (nil: no box).
	Rollouts func() []rollout.Status
	// Metrics serves GET /metrics (nil: 404).
	Metrics http.Handler
	// Version is shown in the page footer.
	Version string
	// Now defaults to time.Now.
	Now func() time.Time

	// Recorder takes the events of the installer's actions (resync, reboot,
	// releasing the firmware loop guard). The page offers actions only when
	// AdminPassword is set and Recorder is not nil.
	Recorder inventory.Recorder
	// Resync sends check-sync NOTIFYs, telling o.Done each phone's result
	// (resync.Run); nil: resync and reboot record that nothing was sent.
	Resync func(ctx context.Context, o resync.Options) (resync.Report, error)
	// Site is this appliance's site in a shared inventory: phones seen at
	// another site are not on its LAN, so no action is sent to them.
	Site string
	// Log gets one line per action: who, what, on how many phones, the
	// outcome. nil: discarded.
	Log *slog.Logger
}

// Handler serves the status page, the JSON API and /metrics.
type Handler struct {
	opts   atomic.Pointer[Options]
	mux    *http.ServeMux
	tokens *tokens
	runner *runner
}

// New returns the handler. It never fails: a nil Inventory shows no phones.
// Close stops the actions it runs.
func New(o Options) *Handler {
	h := &Handler{mux: http.NewServeMux(), tokens: newTokens(), runner: newRunner()}
	h.Reload(o)
	h.mux.HandleFunc("GET /{$}", h.list)
	h.mux.HandleFunc("GET /phones/{mac}", h.phone)
	h.mux.HandleFunc("GET /api/phones", h.apiList)
	h.mux.HandleFunc("GET /api/phones/{mac}", h.apiPhone)
	h.mux.HandleFunc("GET /api/rollouts", h.apiRollouts)
	h.mux.HandleFunc("GET /metrics", h.metrics)
	h.mux.HandleFunc("GET /static/{file}", h.static)
	h.mux.HandleFunc("POST /actions", h.act)
	h.mux.HandleFunc("GET /actions/{id}", h.runPage)
	h.mux.HandleFunc("POST /api/phones/{mac}/{action}", h.apiAct)
	return h
}

// Reload swaps the options (admin password, stale_after, data sources) for
// the next request; requests in flight finish with the old ones.
func (h *Handler) Reload(o Options) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AdminUser == "" {
		o.AdminUser = "admin"
	}
	if o.Inventory == nil {
		o.Inventory = emptyInventory{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h.opts.Store(&o)
}

type emptyInventory struct{}

func (emptyInventory) Phones() []inventory.Phone               { return nil }
func (emptyInventory) Phone(phone.MAC) (inventory.Phone, bool) { return inventory.Phone{}, false }

// Owns reports whether path is one of the handler's routes, so a router in
// front can send everything else to its own 404.
func Owns(path string) bool {
	return path == "/" || path == "/metrics" || path == "/api/phones" || path == "/api/rollouts" || path == "/favicon.ico" ||
		strings.HasPrefix(path, "/api/phones/") || strings.HasPrefix(path, "/phones/") ||
		strings.HasPrefix(path, "/static/") || path == "/actions" || strings.HasPrefix(path, "/actions/")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	// Paths that are not ours get a plain 404 without asking for a password:
	// a phone of another make probing for its own file names must not be
	// told there is something behind a login.
	if !Owns(r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	if r.URL.Path == "/favicon.ico" {
		// Browsers ask for it whatever the page says; an empty answer keeps
		// a 404 warning per page view out of the log. It reveals nothing,
		// so it needs no password.
		w.Header().Set("Cache-Control", "max-age=86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if o.AdminPassword != "" && !authorized(r, o.AdminUser, o.AdminPassword) {
		w.Header().Set("WWW-Authenticate", `Basic realm="snomprov status", charset="UTF-8"`)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("401 unauthorized: log in with [status] admin_user (default \"admin\") and admin_password from the snomprov config\n"))
		return
	}
	hdr := w.Header()
	// Everything is served from here: no scripts, no other origins.
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on the action forms' POSTs, which the same-origin
	// check must refuse. Other sites still get no Referer.
	hdr.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// authorized compares in constant time. Both sides are hashed first so the
// comparison also does not reveal the length of the configured values.
func authorized(r *http.Request, wantUser, wantPass string) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	gu, wu := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(wantUser))
	gp, wp := sha256.Sum256([]byte(pass)), sha256.Sum256([]byte(wantPass))
	userOK := subtle.ConstantTimeCompare(gu[:], wu[:])
	passOK := subtle.ConstantTimeCompare(gp[:], wp[:])
	return userOK&passOK == 1
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	if o.Metrics == nil {
		http.Error(w, "404 metrics are not enabled in this build", http.StatusNotFound)
		return
	}
	o.Metrics.ServeHTTP(w, r)
}

// apiPhoneJSON is one phone in the JSON API: the inventory record plus its
// derived state.
type apiPhoneJSON struct {
	MAC       phone.MAC                               `json:"mac"`
	Site      string                                  `json:"site,omitempty"`
	Model     string                                  `json:"model,omitempty"`
	Firmware  string                                  `json:"firmware,omitempty"`
	Hostname  string                                  `json:"hostname,omitempty"`
	IP        string                                  `json:"ip,omitempty"`
	State     inventory.State                         `json:"state"`
	Reason    string                                  `json:"reason,omitempty"`
	FirstSeen time.Time                               `json:"first_seen"`
	LastSeen  time.Time                               `json:"last_seen"`
	Steps     map[inventory.Step]inventory.StepResult `json:"steps"`
	Events    []inventory.Event                       `json:"events,omitempty"`
}

func toAPI(p inventory.Phone, st inventory.State, reason string, withEvents bool) apiPhoneJSON {
	a := apiPhoneJSON{MAC: p.MAC, Site: p.Site, Model: p.Model, Firmware: p.Firmware, Hostname: p.Hostname, IP: p.IP,
		State: st, Reason: reason, FirstSeen: p.FirstSeen, LastSeen: p.LastSeen, Steps: p.Steps}
	if a.Steps == nil {
		a.Steps = map[inventory.Step]inventory.StepResult{}
	}
	if withEvents {
		a.Events = p.Events
		if a.Events == nil {
			a.Events = []inventory.Event{}
		}
	}
	return a
}

func (h *Handler) apiList(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	f, err := parseFilter(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := []apiPhoneJSON{}
	o.eachMatching(f, func(p inventory.Phone, st inventory.State, reason string) {
		out = append(out, toAPI(p, st, reason, false))
	})
	writeJSON(w, http.StatusOK, out)
}

// eachMatching calls fn with every phone f matches and its state, as the
// API's list and a filter's action both select them.
func (o *Options) eachMatching(f filter, fn func(p inventory.Phone, st inventory.State, reason string)) {
	now := o.Now()
	for _, p := range o.Inventory.Phones() {
		if st, reason := p.State(now, o.StaleAfter); f.match(p, st, reason) {
			fn(p, st, reason)
		}
	}
}

func (h *Handler) apiPhone(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	p, ok := apiLookup(w, r, o)
	if !ok {
		return
	}
	st, reason := p.State(o.Now(), o.StaleAfter)
	writeJSON(w, http.StatusOK, toAPI(p, st, reason, true))
}

// apiLookup finds the phone of the API path's {mac}, or answers the
// client why not.
func apiLookup(w http.ResponseWriter, r *http.Request, o *Options) (inventory.Phone, bool) {
	mac, err := phone.ParseMAC(r.PathValue("mac"))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error()+"; write the MAC as 000413A11FA7 or 00:04:13:a1:1f:a7")
		return inventory.Phone{}, false
	}
	p, ok := o.Inventory.Phone(mac)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "phone "+mac.String()+" has not been seen: it has not asked for DHCP, PnP or a settings file yet")
	}
	return p, ok
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// A failed write means the client went away.
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
