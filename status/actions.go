package status

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/resync"
)

// action is what an installer can do to phones from the page.
type action string

const (
	actionResync  action = "resync"  // check-sync;reboot=false
	actionReboot  action = "reboot"  // check-sync;reboot=true
	actionRelease action = "release" // release the firmware loop guard
)

func parseAction(s string) (action, error) {
	switch a := action(s); a {
	case actionResync, actionReboot, actionRelease:
		return a, nil
	}
	return "", fmt.Errorf("unknown action %q: use resync, reboot or release", s)
}

func (a action) kind() inventory.Kind {
	switch a {
	case actionReboot:
		return inventory.KindReboot
	case actionRelease:
		return inventory.KindLoopCleared
	}
	return inventory.KindResync
}

func (a action) label() string {
	switch a {
	case actionReboot:
		return "Reboot"
	case actionRelease:
		return "Release the firmware loop guard"
	}
	return "Resync"
}

// Bounds of the actions: a run on every phone of a full inventory (5000)
// that all stay silent ends within about 80 s (resync.DefaultConcurrency
// at a time, 4 s each); maxRunTime stops anything slower.
const (
	maxRunTargets = 5000
	maxActiveRuns = 4
	keptRuns      = 50
	maxRunTime    = 5 * time.Minute
	maxFormBytes  = 1 << 20
	// resultWait is how long a POST waits for its run before redirecting to
	// its results: long enough for one phone's answer (or its timeout), so
	// an action on one phone lands on its final result; a bigger run lands
	// on its progress, which reloads itself.
	resultWait  = resync.DefaultTimeout + time.Second
	runRefresh  = 2 // seconds between reloads of a running run's page
	runIDLength = 8 // random bytes, 16 hex digits: never a bare MAC
)

// run is one action on a set of phones, running or done. Its results are
// kept in memory (the last keptRuns runs) for its results page; each one is
// also an event in the phone's timeline.
type run struct {
	id      string
	action  action
	by      string
	scope   string // "phone 000413A11FA7", "3 selected phones", "every phone in state failed"
	started time.Time
	logger  *slog.Logger
	done    chan struct{}

	mu       sync.Mutex
	results  []runResult
	finished time.Time
}

type runResult struct {
	MAC     phone.MAC
	IP      string
	Done    bool
	OK      bool
	Skipped bool // the action does not apply to this phone; nothing was done
	Detail  string
}

func (r *run) set(i int, res runResult) {
	r.mu.Lock()
	res.Done = true
	r.results[i] = res
	r.mu.Unlock()
}

// snapshot copies the results and says whether the run has finished.
func (r *run) snapshot() ([]runResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runResult(nil), r.results...), !r.finished.IsZero()
}

// log says what the finished run did, in one line.
func (r *run) log() {
	results, _ := r.snapshot()
	ok, failed, skipped := 0, 0, 0
	for _, res := range results {
		switch {
		case res.Skipped:
			skipped++
		case res.OK:
			ok++
		default:
			failed++
		}
	}
	r.logger.Info("status page action", "action", string(r.action), "by", r.by, "phones", r.scope,
		"ok", ok, "failed", failed, "skipped", skipped, "took", r.finished.Sub(r.started).Round(time.Millisecond), "results", "/actions/"+r.id)
}

// runner runs the actions in the background, at most maxActiveRuns at a
// time, and keeps the last keptRuns for their results pages.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	runs   []*run // oldest first
	active int
	closed bool
}

func newRunner() *runner {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &runner{ctx: ctx, cancel: func() { cancel(errors.New("the appliance is stopping")) }}
}

var errBusy = fmt.Errorf("%d actions are still running: wait until one has finished (their pages show how far they are), then try again", maxActiveRuns)

var errClosed = errors.New("the appliance is stopping: no new actions")

// start runs work for r in the background unless too many runs are active.
func (rn *runner) start(r *run, work func(ctx context.Context)) error {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.closed {
		return errClosed
	}
	if rn.active >= maxActiveRuns {
		return errBusy
	}
	rn.active++
	rn.runs = append(rn.runs, r)
	if len(rn.runs) > keptRuns {
		// Drop the oldest finished run; a running one stays until it ends.
		for i, old := range rn.runs {
			if _, finished := old.snapshot(); finished {
				rn.runs = append(rn.runs[:i], rn.runs[i+1:]...)
				break
			}
		}
	}
	rn.wg.Go(func() {
		ctx, cancel := context.WithTimeoutCause(rn.ctx, maxRunTime, fmt.Errorf("the action ran longer than %s", maxRunTime))
		defer cancel()
		work(ctx)
		r.mu.Lock()
		r.finished = time.Now()
		r.mu.Unlock()
		r.log()
		close(r.done)
		rn.mu.Lock()
		rn.active--
		rn.mu.Unlock()
	})
	return nil
}

func (rn *runner) get(id string) *run {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	for _, r := range rn.runs {
		if r.id == id {
			return r
		}
	}
	return nil
}

// close stops the running actions and waits until each has recorded the
// result of every phone (those not reached yet as "not sent").
func (rn *runner) close() {
	rn.mu.Lock()
	rn.closed = true
	rn.mu.Unlock()
	rn.cancel()
	rn.wg.Wait()
}

// Close stops the actions still running and returns once every phone's
// result is recorded in the inventory. Call it before the inventory's last
// flush. The handler serves pages afterwards but starts no new action.
func (h *Handler) Close() { h.runner.close() }

func newRunID() string {
	b := make([]byte, runIDLength)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// actionsOn reports whether the page offers actions: only behind the admin
// password, and only when the appliance wired a recorder for their events.
func (o *Options) actionsOn() bool { return o.AdminPassword != "" && o.Recorder != nil }

// refusal is an action request turned down before anything was done.
type refusal struct {
	code int
	msg  string
}

func refuse(code int, msg string) *refusal {
	return &refusal{code: code, msg: msg}
}

const nothingDone = " Nothing was done."

// guard checks what every action request must pass, before its body is
// read: actions on, from a page of this host.
func guard(o *Options, r *http.Request) *refusal {
	if !o.actionsOn() {
		return refuse(http.StatusForbidden, "403 actions are off: they are offered only when [status] admin_password is set in the snomprov config."+nothingDone)
	}
	if err := sameOrigin(r); err != nil {
		return refuse(http.StatusForbidden, "403 refused: "+err.Error()+"; use the buttons of this status page."+nothingDone)
	}
	return nil
}

// act is POST /actions, the forms of the list and phone pages: action=,
// and either mac= (repeated: the selection, or the one phone of its page)
// or scope=filter with the list's state, q and site (every phone matching
// it, e.g. every failed phone).
func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	if rf := guard(o, r); rf != nil {
		http.Error(w, rf.msg, rf.code)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "400 the form could not be read: "+err.Error()+"."+nothingDone, http.StatusBadRequest)
		return
	}
	form := r.PostForm
	if err := h.tokens.check(form.Get(tokenField), o.AdminUser, o.AdminPassword, o.Now()); err != nil {
		http.Error(w, "403 refused: "+err.Error()+". Reload the status page and press the button again."+nothingDone, http.StatusForbidden)
		return
	}
	a, err := parseAction(form.Get("action"))
	if err != nil {
		http.Error(w, "400 "+err.Error()+"."+nothingDone, http.StatusBadRequest)
		return
	}
	targets, scope, err := selectPhones(o, form)
	if err != nil {
		http.Error(w, "400 "+err.Error()+"."+nothingDone, http.StatusBadRequest)
		return
	}
	if a == actionReboot && len(targets) > 1 && form.Get("confirm") != "yes" {
		// Rebooting many phones ends their calls: one more press, on a page
		// that says how many, and no JavaScript confirm() needed.
		h.confirmPage(w, o, form, targets, scope)
		return
	}
	rn, err := h.begin(o, a, targets, scope)
	if err != nil {
		http.Error(w, "503 "+err.Error()+"."+nothingDone, http.StatusServiceUnavailable)
		return
	}
	t := time.NewTimer(resultWait)
	defer t.Stop()
	select {
	case <-rn.done:
	case <-t.C:
	case <-r.Context().Done():
	}
	http.Redirect(w, r, "/actions/"+rn.id, http.StatusSeeOther)
}

// target is one phone an action was asked for.
type target struct {
	mac   phone.MAC
	p     inventory.Phone
	known bool
}

// selectPhones reads the phones a form names.
func selectPhones(o *Options, form url.Values) ([]target, string, error) {
	var out []target
	if form.Get("scope") == "filter" {
		f, err := filterFrom(form, 0)
		if err != nil {
			return nil, "", err
		}
		o.eachMatching(f, func(p inventory.Phone, _ inventory.State, _ string) {
			out = append(out, target{mac: p.MAC, p: p, known: true})
		})
		if len(out) == 0 {
			return nil, "", errors.New("no phone matches the filter any more")
		}
		return out, f.describe(), checkCount(len(out))
	}
	macs := form["mac"]
	if len(macs) == 0 {
		return nil, "", errors.New("no phone selected: tick the phones' boxes first")
	}
	if err := checkCount(len(macs)); err != nil {
		return nil, "", err
	}
	seen := map[phone.MAC]bool{}
	for _, s := range macs {
		m, err := phone.ParseMAC(s)
		if err != nil {
			return nil, "", err
		}
		if seen[m] {
			continue
		}
		seen[m] = true
		p, ok := o.Inventory.Phone(m)
		out = append(out, target{mac: m, p: p, known: ok})
	}
	if len(out) == 1 {
		return out, "phone " + out[0].mac.String(), nil
	}
	return out, fmt.Sprintf("%d selected phones", len(out)), nil
}

func checkCount(n int) error {
	if n > maxRunTargets {
		return fmt.Errorf("%d phones is more than one action takes (%d); narrow the filter", n, maxRunTargets)
	}
	return nil
}

// begin starts the action on the targets.
func (h *Handler) begin(o *Options, a action, targets []target, scope string) (*run, error) {
	rn := &run{id: newRunID(), action: a, by: o.AdminUser, scope: scope, started: time.Now(), logger: o.Log, done: make(chan struct{}),
		results: make([]runResult, len(targets))}
	for i, t := range targets {
		rn.results[i] = runResult{MAC: t.mac, IP: t.p.IP}
	}
	err := h.runner.start(rn, func(ctx context.Context) { execute(ctx, o, rn, targets) })
	return rn, err
}

// execute does the action to every target and records each result, in
// the run and as the phone's StepAction event.
func execute(ctx context.Context, o *Options, rn *run, targets []target) {
	by := rn.action.label() + " by " + rn.by + " from the status page: "
	if rn.action == actionRelease {
		by = "released by " + rn.by + " from the status page"
	}
	record := func(i int, ok bool, detail string) {
		t := targets[i]
		rn.set(i, runResult{MAC: t.mac, IP: t.p.IP, OK: ok, Detail: detail})
		o.Recorder.Record(inventory.Observation{MAC: t.mac, Event: inventory.Event{
			Step: inventory.StepAction, Kind: rn.action.kind(), OK: ok, Detail: detail, IP: t.p.IP}})
	}
	// skip is a phone the action cannot apply to: nothing was done to it, so
	// its timeline gets nothing either.
	skip := func(i int, detail string) {
		t := targets[i]
		rn.set(i, runResult{MAC: t.mac, IP: t.p.IP, Skipped: true, Detail: detail})
	}
	var sends []resync.Target
	var index []int // sends[j] is targets[index[j]]
	now := o.Now()
	for i, t := range targets {
		switch {
		case !t.known:
			skip(i, "not in the inventory: this phone has not been seen, nothing was done")
		case o.Site != "" && t.p.Site != "" && t.p.Site != o.Site:
			skip(i, "seen at site "+t.p.Site+", not on this appliance's LAN: act on it from that site's appliance; nothing was done")
		case rn.action == actionRelease:
			if st, _ := t.p.State(now, o.StaleAfter); st != inventory.StateFirmwareLoop {
				skip(i, "not held by the firmware loop guard (state "+string(st)+"), nothing was done")
				continue
			}
			record(i, true, by)
		default:
			ip, err := netip.ParseAddr(t.p.IP)
			if err != nil {
				record(i, false, by+"no IP known for this phone, nothing was sent")
				continue
			}
			if ip = ip.Unmap(); !ip.Is4() {
				record(i, false, by+"its address "+ip.String()+" is IPv6, and check-sync is sent over IPv4 only; nothing was sent")
				continue
			}
			sends = append(sends, resync.Target{MAC: t.mac, Addr: netip.AddrPortFrom(ip, resync.DefaultPort)})
			index = append(index, i)
		}
	}
	if len(sends) == 0 || o.Resync == nil {
		for _, i := range index {
			record(i, false, by+"this build cannot send check-sync, nothing was sent")
		}
		return
	}
	_, _ = o.Resync(ctx, resync.Options{Targets: sends, Reboot: rn.action == actionReboot,
		Done: func(j int, res resync.Result) { record(index[j], res.OK(), by+resyncDetail(res)) }})
}

// resyncDetail is a phone's answer in words.
func resyncDetail(r resync.Result) string {
	if r.OK() {
		return fmt.Sprintf("accepted, %d %s from %s", r.Status, r.Reason, r.From)
	}
	return r.Error
}

// apiAct is POST /api/phones/{mac}/{action}: the same action on one phone,
// answered with its result once the phone has answered. A browser sends
// Content-Type: application/json across sites only after a CORS preflight,
// which this server never grants, so requiring it (besides the same-origin
// check) keeps another site's page from using a browser's cached Basic
// credentials here.
func (h *Handler) apiAct(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	if rf := guard(o, r); rf != nil {
		writeJSONError(w, rf.code, rf.msg)
		return
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeJSONError(w, http.StatusUnsupportedMediaType, "415 send the request with Content-Type: application/json (an empty body or {} will do), which keeps other sites' pages from sending it."+nothingDone)
		return
	}
	a, err := parseAction(r.PathValue("action"))
	if err != nil {
		writeJSONError(w, http.StatusNotFound, err.Error()+"."+nothingDone)
		return
	}
	p, ok := apiLookup(w, r, o)
	if !ok {
		return
	}
	mac := p.MAC
	rn, err := h.begin(o, a, []target{{mac: mac, p: p, known: true}}, "phone "+mac.String())
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, err.Error()+"."+nothingDone)
		return
	}
	select {
	case <-rn.done:
	case <-r.Context().Done():
		return // the client went away; the run records its result anyway
	}
	results, _ := rn.snapshot()
	res := results[0]
	code := http.StatusOK
	if !res.OK {
		code = http.StatusBadGateway
	}
	writeJSON(w, code, apiActionJSON{Action: a, MAC: mac, IP: res.IP, OK: res.OK, Detail: res.Detail, Results: "/actions/" + rn.id})
}

type apiActionJSON struct {
	Action  action    `json:"action"`
	MAC     phone.MAC `json:"mac"`
	IP      string    `json:"ip,omitempty"`
	OK      bool      `json:"ok"`
	Detail  string    `json:"detail"`
	Results string    `json:"results"` // the run's results page
}
