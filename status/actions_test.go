package status

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/syncbuf"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/resync"
)

// fakeSIP stands in for resync.Run: it answers every target with status
// (0: no answer) and remembers what it was asked to send.
type fakeSIP struct {
	status int
	mu     sync.Mutex
	calls  []resync.Options
	sent   []resync.Target
}

func (f *fakeSIP) run(ctx context.Context, o resync.Options) (resync.Report, error) {
	f.mu.Lock()
	f.calls = append(f.calls, o)
	f.sent = append(f.sent, o.Targets...)
	f.mu.Unlock()
	rep := resync.Report{Reboot: o.Reboot}
	for i, t := range o.Targets {
		r := resync.Result{Target: t, Sent: 1}
		if f.status == 0 {
			r.Error = "no answer within 4s (3 NOTIFYs sent)"
		} else {
			r.Answered, r.Status, r.Reason, r.From = true, f.status, "OK", t.Addr.String()
		}
		rep.Results = append(rep.Results, r)
		o.Done(i, r)
	}
	return rep, nil
}

func (f *fakeSIP) sentTo() []resync.Target {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resync.Target(nil), f.sent...)
}

// actionEvents are the action events in the store, phone by phone.
func actionEvents(store *inventory.Store) []inventory.Observation {
	var out []inventory.Observation
	for _, p := range store.Phones() {
		for _, e := range p.Events {
			if e.Step == inventory.StepAction {
				out = append(out, inventory.Observation{MAC: p.MAC, Event: e})
			}
		}
	}
	return out
}

type actionFixture struct {
	h     *Handler
	o     Options
	sip   *fakeSIP
	store *inventory.Store // the Recorder too
}

const testHost = "snomprov.lan:8443"

func newActionFixture(t *testing.T, password string) *actionFixture {
	t.Helper()
	o := fixtureOptions(t)
	store := o.Inventory.(*inventory.Store)
	f := &actionFixture{sip: &fakeSIP{status: 200}, store: store}
	o.AdminPassword = password
	o.Recorder = store
	o.Resync = f.sip.run
	f.o = o
	f.h = New(o)
	t.Cleanup(f.h.Close)
	return f
}

// token is a valid token of f's handler for its admin user and password.
func (f *actionFixture) token() string {
	return f.h.tokens.mint("admin", f.o.AdminPassword, fixtureNow)
}

// post sends a request the way a browser on the page would, unless setup
// changes it.
func (f *actionFixture) post(t *testing.T, target, contentType, body string, setup ...func(*http.Request)) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "https://"+testHost+target, strings.NewReader(body))
	req.Host = testHost
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth("admin", f.o.AdminPassword)
	for _, s := range setup {
		s(req)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return response{code: rec.Code, hdr: rec.Header(), body: rec.Body.String()}
}

const formType = "application/x-www-form-urlencoded"

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func header(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }

// TestActionGuard: every combination of password, credentials, token,
// method and origin that must be refused is, with a message saying why,
// and sends and records nothing; the allowed ones act.
func TestActionGuard(t *testing.T) {
	other := New(Options{}) // another process: another key
	cases := []struct {
		name     string
		password string
		method   string
		target   string
		ctype    string
		body     func(f *actionFixture) string
		setup    []func(*http.Request)
		code     int
		says     string
	}{
		{name: "form from the page", password: "pw", body: okForm, setup: sameSite(), code: 303},
		{name: "form from a tool (no Origin, no Referer)", password: "pw", body: okForm, code: 303},
		{name: "form with a same-host Referer only", password: "pw", body: okForm, setup: []func(*http.Request){header("Referer", "https://"+testHost+"/")}, code: 303},
		{name: "no admin password: actions off", password: "", body: okForm, setup: sameSite(), code: 403, says: "admin_password"},
		{name: "no credentials", password: "pw", body: okForm, setup: []func(*http.Request){func(r *http.Request) { r.Header.Del("Authorization") }}, code: 401, says: "admin_password"},
		{name: "wrong password", password: "pw", body: okForm, setup: []func(*http.Request){func(r *http.Request) { r.SetBasicAuth("admin", "nope") }}, code: 401},
		{name: "no token", password: "pw", body: func(*actionFixture) string { return form("action", "resync", "mac", macFailed.String()) }, setup: sameSite(), code: 403, says: "no action token"},
		{name: "garbage token", password: "pw", body: withToken("x.y"), setup: sameSite(), code: 403, says: "not valid"},
		{name: "token of another process", password: "pw", body: func(*actionFixture) string {
			return form("action", "resync", "mac", macFailed.String(), "token", other.tokens.mint("admin", "pw", fixtureNow))
		}, setup: sameSite(), code: 403, says: "not valid"},
		{name: "token for another password", password: "pw", body: func(f *actionFixture) string {
			return form("action", "resync", "mac", macFailed.String(), "token", f.h.tokens.mint("admin", "old", fixtureNow))
		}, setup: sameSite(), code: 403, says: "not valid"},
		{name: "expired token", password: "pw", body: func(f *actionFixture) string {
			return form("action", "resync", "mac", macFailed.String(), "token", f.h.tokens.mint("admin", "pw", fixtureNow.Add(-13*time.Hour)))
		}, setup: sameSite(), code: 403, says: "expired"},
		{name: "token only in the query string", password: "pw", target: "/actions?token=TOKEN", body: func(*actionFixture) string {
			return form("action", "resync", "mac", macFailed.String())
		}, setup: sameSite(), code: 403, says: "no action token"},
		{name: "cross-site (Sec-Fetch-Site)", password: "pw", body: okForm, setup: []func(*http.Request){header("Sec-Fetch-Site", "cross-site"), header("Origin", "https://evil.example")}, code: 403, says: "another site"},
		{name: "cross-site (Origin, old browser)", password: "pw", body: okForm, setup: []func(*http.Request){header("Origin", "https://evil.example")}, code: 403, says: "another site"},
		{name: "Origin null", password: "pw", body: okForm, setup: []func(*http.Request){header("Origin", "null")}, code: 403, says: "another site"},
		{name: "cross-site Referer", password: "pw", body: okForm, setup: []func(*http.Request){header("Referer", "https://evil.example/x")}, code: 403, says: "another site"},
		{name: "GET never acts", password: "pw", method: http.MethodGet, target: "/actions?action=resync&mac=000413B00002&token=TOKEN", code: 405},
		{name: "PUT never acts", password: "pw", method: http.MethodPut, body: okForm, setup: sameSite(), code: 405},
		{name: "unknown action", password: "pw", body: func(f *actionFixture) string {
			return form("action", "format", "mac", macFailed.String(), "token", f.token())
		}, setup: sameSite(), code: 400, says: "unknown action"},
		{name: "nothing selected", password: "pw", body: func(f *actionFixture) string { return form("action", "resync", "token", f.token()) }, setup: sameSite(), code: 400, says: "no phone selected"},
		{name: "API from a tool", password: "pw", target: "/api/phones/000413B00002/resync", ctype: "application/json", code: 200},
		{name: "API from the page's origin", password: "pw", target: "/api/phones/000413B00002/resync", ctype: "application/json", setup: sameSite(), code: 200},
		{name: "API as a form (CSRF-able content type)", password: "pw", target: "/api/phones/000413B00002/resync", ctype: formType, code: 415, says: "application/json"},
		{name: "API as text/plain", password: "pw", target: "/api/phones/000413B00002/resync", ctype: "text/plain", code: 415},
		{name: "API cross-site", password: "pw", target: "/api/phones/000413B00002/resync", ctype: "application/json", setup: []func(*http.Request){header("Origin", "https://evil.example")}, code: 403, says: "another site"},
		{name: "API without a password", password: "", target: "/api/phones/000413B00002/resync", ctype: "application/json", code: 403, says: "admin_password"},
		{name: "API GET never acts", password: "pw", method: http.MethodGet, target: "/api/phones/000413B00002/resync", code: 405},
		{name: "API unknown action", password: "pw", target: "/api/phones/000413B00002/wipe", ctype: "application/json", code: 404},
		{name: "API unseen phone", password: "pw", target: "/api/phones/000413FFFFFF/resync", ctype: "application/json", code: 404, says: "not been seen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newActionFixture(t, tc.password)
			method, target, ctype := tc.method, tc.target, tc.ctype
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "/actions"
			}
			target = strings.ReplaceAll(target, "TOKEN", url.QueryEscape(f.token()))
			if ctype == "" && method != http.MethodGet {
				ctype = formType
			}
			body := ""
			if tc.body != nil {
				body = tc.body(f)
			}
			req := httptest.NewRequest(method, "https://"+testHost+target, strings.NewReader(body))
			req.Host = testHost
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			req.SetBasicAuth("admin", tc.password)
			for _, s := range tc.setup {
				s(req)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body.String())
			}
			if tc.says != "" && !strings.Contains(rec.Body.String(), tc.says) {
				t.Errorf("body %q does not say %q", rec.Body.String(), tc.says)
			}
			acted := tc.code == 303 || tc.code == 200
			sent, recorded := f.sip.sentTo(), actionEvents(f.store)
			if acted && (len(sent) != 1 || len(recorded) != 1) {
				t.Errorf("allowed, but sent %d NOTIFYs and recorded %d events", len(sent), len(recorded))
			}
			if !acted && (len(sent) != 0 || len(recorded) != 0) {
				t.Errorf("refused, but sent %v and recorded %v", sent, recorded)
			}
			if !acted && tc.code != 405 && tc.code != 401 && tc.code != 404 && !strings.Contains(rec.Body.String(), "Nothing was done") {
				t.Errorf("refusal does not say that nothing was done: %q", rec.Body.String())
			}
			if tc.code == 303 && !strings.HasPrefix(rec.Header().Get("Location"), "/actions/") {
				t.Errorf("redirect to %q", rec.Header().Get("Location"))
			}
		})
	}
}

func okForm(f *actionFixture) string {
	return form("action", "resync", "mac", macFailed.String(), "token", f.token())
}

func withToken(tok string) func(*actionFixture) string {
	return func(*actionFixture) string { return form("action", "resync", "token", tok) }
}

// sameSite is what Chromium sends with a form on the page.
func sameSite() []func(*http.Request) {
	return []func(*http.Request){header("Origin", "https://"+testHost), header("Sec-Fetch-Site", "same-origin")}
}

// results follows a POST's redirect to its results page and returns it.
func (f *actionFixture) results(t *testing.T, r response) response {
	t.Helper()
	if r.code != http.StatusSeeOther {
		t.Fatalf("POST: %d %s", r.code, r.body)
	}
	loc := r.hdr.Get("Location")
	res := get(t, f.h, loc, func(req *http.Request) { req.SetBasicAuth("admin", f.o.AdminPassword) })
	if res.code != 200 {
		t.Fatalf("GET %s: %d %s", loc, res.code, res.body)
	}
	return res
}

func TestActionResults(t *testing.T) {
	noIP := mustMAC("000413F00006")
	v6 := mustMAC("000413F00008")
	cases := []struct {
		name     string
		status   int // the phones' SIP answer; 0: none
		form     []string
		wantSent []string // IPs
		reboot   bool
		// wantRows: MAC -> words of its row on the results page.
		wantRows map[phone.MAC][]string
		// wantEvents: MAC -> (ok, detail part) of its recorded action event.
		wantEvents map[phone.MAC]string
		wantKind   inventory.Kind
		done       string
	}{
		{
			name: "resync a selection", status: 200,
			form:     []string{"action", "resync", "mac", macFailed.Colon(), "mac", macPnP.String(), "mac", macFailed.String()},
			wantSent: []string{"10.77.0.102:5060", "10.77.0.104:5060"},
			wantRows: map[phone.MAC][]string{
				macFailed: {"10.77.0.102", "ok", "Resync by admin from the status page: accepted, 200 OK from 10.77.0.102:5060"},
				macPnP:    {"10.77.0.104", "ok"},
			},
			wantEvents: map[phone.MAC]string{macFailed: "ok: Resync by admin from the status page: accepted, 200 OK", macPnP: "ok: Resync by admin"},
			wantKind:   inventory.KindResync, done: "Done: 2 ok, 0 failed, of 2.",
		},
		{
			name: "reboot every failed phone", status: 200,
			form:       []string{"action", "reboot", "scope", "filter", "state", "failed"},
			wantSent:   []string{"10.77.0.102:5060"},
			reboot:     true,
			wantRows:   map[phone.MAC][]string{macFailed: {"ok", "Reboot by admin from the status page"}},
			wantEvents: map[phone.MAC]string{macFailed: "ok: Reboot by admin"},
			wantKind:   inventory.KindReboot, done: "Done: 1 ok, 0 failed, of 1.",
		},
		{
			name: "a phone that does not answer, one without an IP, one never seen", status: 0,
			form:     []string{"action", "resync", "mac", macStale.String(), "mac", noIP.String(), "mac", macUnknown.String(), "mac", v6.String()},
			wantSent: []string{"10.77.0.103:5060"},
			wantRows: map[phone.MAC][]string{
				macStale:   {"failed", "no answer within 4s"},
				noIP:       {"failed", "no IP known for this phone, nothing was sent"},
				macUnknown: {"skipped", "not in the inventory"},
				v6:         {"failed", "fd00::8 is IPv6"},
			},
			wantEvents: map[phone.MAC]string{macStale: "failed: Resync by admin from the status page: no answer", noIP: "failed: Resync by admin from the status page: no IP known",
				v6: "failed: Resync by admin from the status page: its address fd00::8 is IPv6"},
			wantKind: inventory.KindResync, done: "Done: 0 ok, 3 failed, 1 skipped, of 4.",
		},
		{
			name: "release a phone the loop guard does not hold", status: 200,
			form:     []string{"action", "release", "mac", macUpToDate.String()},
			wantRows: map[phone.MAC][]string{macUpToDate: {"skipped", "not held by the firmware loop guard (state up-to-date), nothing was done"}},
			done:     "Done: 0 ok, 0 failed, 1 skipped, of 1.",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newActionFixture(t, "pw")
			f.store.Record(inventory.Observation{MAC: noIP, Event: inventory.Event{Time: fixtureNow, Step: inventory.StepFile, OK: true}})
			f.store.Record(inventory.Observation{MAC: v6, IP: netip.MustParseAddr("fd00::8"), Event: inventory.Event{Time: fixtureNow, Step: inventory.StepFile, OK: true}})
			f.sip.status = tc.status
			res := f.results(t, f.post(t, "/actions", formType, form(append(tc.form, "token", f.token())...), sameSite()...))
			var sent []string
			for _, s := range f.sip.sentTo() {
				sent = append(sent, s.Addr.String())
			}
			if fmt.Sprint(sent) != fmt.Sprint(tc.wantSent) {
				t.Errorf("sent to %v, want %v", sent, tc.wantSent)
			}
			for _, c := range f.sip.calls {
				if c.Reboot != tc.reboot {
					t.Errorf("reboot=%v, want %v", c.Reboot, tc.reboot)
				}
			}
			text := strings.Join(strings.Fields(html.UnescapeString(regexpTags.ReplaceAllString(res.body, " "))), " ")
			if !strings.Contains(text, tc.done) {
				t.Errorf("results page lacks %q:\n%s", tc.done, text)
			}
			if strings.Contains(res.body, `http-equiv="refresh"`) {
				t.Error("a finished run's page reloads itself")
			}
			for mac, words := range tc.wantRows {
				row := rowOf(res.body, "result-"+mac.String())
				for _, w := range words {
					if !strings.Contains(row, w) {
						t.Errorf("row %s reads %q; lacks %q", mac, row, w)
					}
				}
			}
			got := map[phone.MAC]string{}
			for _, o := range actionEvents(f.store) {
				if o.Event.Step != inventory.StepAction || o.Event.Kind != tc.wantKind {
					t.Errorf("recorded %+v", o.Event)
				}
				r := "failed: "
				if o.Event.OK {
					r = "ok: "
				}
				got[o.MAC] = r + o.Event.Detail
			}
			if len(got) != len(tc.wantEvents) {
				t.Errorf("recorded %v, want events for %v", got, tc.wantEvents)
			}
			for mac, want := range tc.wantEvents {
				if !strings.HasPrefix(got[mac], want) {
					t.Errorf("event of %s = %q, want %q...", mac, got[mac], want)
				}
			}
			// The timeline shows each recorded action with its label.
			for mac := range tc.wantEvents {
				page := get(t, f.h, phoneURL(mac), func(r *http.Request) { r.SetBasicAuth("admin", "pw") })
				tl := strings.Join(strings.Fields(regexpTags.ReplaceAllString(rowOf(page.body, "timeline"), " ")), " ")
				if !strings.Contains(tl, "Action "+string(tc.wantKind)) {
					t.Errorf("timeline of %s lacks the action: %s", mac, tl)
				}
			}
		})
	}
}

// rowOf returns the element with this id, roughly: from its id to the end
// of its table row (or table).
func rowOf(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	end := strings.Index(body[i:], "</tr>")
	if id == "timeline" {
		end = strings.Index(body[i:], "</table>")
	}
	if end < 0 {
		return body[i:]
	}
	return html.UnescapeString(body[i : i+end])
}

// TestAPIAction: the JSON answer carries the phone's result; a phone that
// does not accept is a 502.
func TestAPIAction(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   int
		ok     bool
	}{{200, 200, true}, {0, 502, false}} {
		f := newActionFixture(t, "pw")
		f.sip.status = tc.status
		logs := &syncbuf.Buffer{}
		f.o.Log = slog.New(slog.NewTextHandler(logs, nil))
		f.h.Reload(f.o)
		r := f.post(t, "/api/phones/00:04:13:b0:00:02/reboot", "application/json; charset=utf-8", "{}")
		if r.code != tc.code {
			t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
		}
		var got apiActionJSON
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatal(err)
		}
		if got.OK != tc.ok || got.MAC != macFailed || got.Action != actionReboot || got.IP != "10.77.0.102" ||
			!strings.HasPrefix(got.Results, "/actions/") || !strings.HasPrefix(got.Detail, "Reboot by admin") {
			t.Errorf("answer %+v", got)
		}
		if c := f.sip.calls; len(c) != 1 || !c[0].Reboot {
			t.Errorf("calls %+v", c)
		}
		f.h.Close() // the log line is written once the run has finished
		want := fmt.Sprintf(`msg="status page action" action=reboot by=admin phones="phone 000413B00002" ok=%d failed=%d skipped=0`, map[bool]int{true: 1}[tc.ok], map[bool]int{false: 1}[tc.ok])
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// TestActionsOnlyWithPassword: without an admin password the pages offer
// no action and say how to enable them; with one, every form carries a
// token the handler accepts.
func TestActionsOnlyWithPassword(t *testing.T) {
	open := newActionFixture(t, "")
	for _, p := range []string{"/", phoneURL(macFailed)} {
		r := get(t, open.h, p)
		if !strings.Contains(r.body, `id="actions-off"`) || !strings.Contains(r.body, "admin_password") {
			t.Errorf("%s without a password does not say how to enable actions", p)
		}
		if strings.Contains(r.body, `method="post"`) || strings.Contains(r.body, `type="checkbox"`) {
			t.Errorf("%s without a password offers actions", p)
		}
	}
	f := newActionFixture(t, "pw")
	auth := func(r *http.Request) { r.SetBasicAuth("admin", "pw") }
	list := get(t, f.h, "/?state=failed", auth)
	for _, want := range []string{`id="pick-000413B00002"`, `form="act"`, `id="resync-selected"`, `id="reboot-all"`,
		`<input type="hidden" name="state" value="failed">`, "All 1 shown (every phone in state failed)"} {
		if !strings.Contains(list.body, want) {
			t.Errorf("list page lacks %s", want)
		}
	}
	page := get(t, f.h, phoneURL(macFailed), auth)
	if !strings.Contains(page.body, `id="resync"`) || !strings.Contains(page.body, `id="reboot"`) {
		t.Error("phone page lacks its actions")
	}
	if strings.Contains(page.body, `id="release"`) {
		t.Error("a phone the loop guard does not hold is offered a release")
	}
	m := regexpToken.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatal("no token in the phone page's form")
	}
	if err := f.h.tokens.check(html.UnescapeString(m[1]), "admin", "pw", fixtureNow); err != nil {
		t.Errorf("the page's token is refused: %v", err)
	}
	if err := f.h.tokens.check(html.UnescapeString(m[1]), "admin", "pw", fixtureNow.Add(tokenLifetime)); err == nil {
		t.Error("the page's token outlives its lifetime")
	}
}

// TestRunnerBounds: at most maxActiveRuns run at once (the next is a 503
// that does nothing); Close stops them and every phone's result is
// recorded before it returns.
func TestRunnerBounds(t *testing.T) {
	f := newActionFixture(t, "pw")
	started := make(chan struct{}, maxActiveRuns)
	f.o.Resync = func(ctx context.Context, o resync.Options) (resync.Report, error) {
		started <- struct{}{}
		<-ctx.Done() // a phone that never answers, until the appliance stops
		for i, tg := range o.Targets {
			o.Done(i, resync.Result{Target: tg, Error: "stopped before the phone answered: " + context.Cause(ctx).Error()})
		}
		return resync.Report{}, nil
	}
	f.h.Reload(f.o)
	for range maxActiveRuns {
		if _, err := f.h.begin(f.h.opts.Load(), actionResync, []target{{mac: macFailed, p: mustPhone(t, f, macFailed), known: true}}, "phone"); err != nil {
			t.Fatal(err)
		}
		<-started
	}
	r := f.post(t, "/actions", formType, okForm(f), sameSite()...)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "still running") {
		t.Errorf("a fifth run: %d %s", r.code, r.body)
	}
	if n := len(actionEvents(f.store)); n != 0 {
		t.Errorf("%d events before any phone answered", n)
	}
	f.h.Close()
	got := actionEvents(f.store)
	if len(got) != maxActiveRuns {
		t.Fatalf("after Close: %d events, want %d", len(got), maxActiveRuns)
	}
	for _, o := range got {
		if o.Event.OK || !strings.Contains(o.Event.Detail, "the appliance is stopping") {
			t.Errorf("event %+v", o.Event)
		}
	}
	if r := f.post(t, "/actions", formType, okForm(f), sameSite()...); r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "stopping") {
		t.Errorf("after Close: %d %s", r.code, r.body)
	}
}

// TestTooManyTargets: a form naming more phones than a run takes is
// refused whole.
func TestTooManyTargets(t *testing.T) {
	f := newActionFixture(t, "pw")
	kv := []string{"action", "resync", "token", f.token()}
	for i := range maxRunTargets + 1 {
		kv = append(kv, "mac", fmt.Sprintf("000413%06X", i))
	}
	r := f.post(t, "/actions", formType, form(kv...), sameSite()...)
	if r.code != 400 || !strings.Contains(r.body, "more than one action takes") || len(f.sip.sentTo()) != 0 {
		t.Errorf("%d %s", r.code, r.body)
	}
}

func TestRunPageUnknown(t *testing.T) {
	f := newActionFixture(t, "pw")
	r := get(t, f.h, "/actions/0123456789abcdef", func(r *http.Request) { r.SetBasicAuth("admin", "pw") })
	if r.code != 404 || !strings.Contains(r.body, "timeline") {
		t.Errorf("%d %s", r.code, r.body)
	}
}

func mustPhone(t *testing.T, f *actionFixture, m phone.MAC) inventory.Phone {
	t.Helper()
	p, ok := f.store.Phone(m)
	if !ok {
		t.Fatalf("%s not in the fixture", m)
	}
	return p
}

var (
	regexpTags  = regexp.MustCompile(`<[^>]*>`)
	regexpToken = regexp.MustCompile(`name="token" value="([^"]+)"`)
)

// loopback5000 puts phone i at 127.77.x.y: a resync to it stays on this
// machine, and nothing listens there, so every phone stays silent.
func loopback5000(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 77, byte(i/250 + 1), byte(i%250 + 1)})
}

// silent5000 is the page over 5000 phones at silent loopback addresses,
// actions on with the real resync.Run, and every phone as a target.
func silent5000(b *testing.B) (Options, []target) {
	o := fixtureOptions(b)
	store := store5000(b, loopback5000)
	o.Inventory, o.Recorder, o.AdminPassword = store, inventory.Discard, "pw"
	o.Resync = func(ctx context.Context, ro resync.Options) (resync.Report, error) {
		return resync.Run(ctx, ro, io.Discard)
	}
	var targets []target
	for _, p := range store.Phones() {
		targets = append(targets, target{mac: p.MAC, p: p, known: true})
	}
	return o, targets
}

// BenchmarkListPageDuringAction5000 renders the list (5000 phones, actions
// on) while nothing runs, and while a resync of all 5000 phones runs with
// the real resync.Run against silent loopback addresses: the page must not
// wait for the action.
func BenchmarkListPageDuringAction5000(b *testing.B) {
	o, all := silent5000(b)
	for _, during := range []bool{false, true} {
		name := "idle"
		if during {
			name = "during-resync-of-5000"
		}
		b.Run(name, func(b *testing.B) {
			h := New(o)
			defer h.Close()
			var rn *run
			if during {
				var err error
				if rn, err = h.begin(h.opts.Load(), actionResync, all, "every phone"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.SetBasicAuth("admin", "pw")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
			b.StopTimer()
			if rn != nil {
				if _, finished := rn.snapshot(); finished {
					b.Log("the action finished before the loop did: the page was measured partly without it")
				}
				start := time.Now()
				h.Close()
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "close-ms")
			}
		})
	}
}

// BenchmarkAction5000Silent is one resync of 5000 phones that never answer
// (real resync.Run, loopback addresses): bounded by resync's concurrency
// (256) × its 4 s timeout, about 80 s. Run it with -benchtime=1x.
func BenchmarkAction5000Silent(b *testing.B) {
	o, targets := silent5000(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := New(o)
		rn, err := h.begin(h.opts.Load(), actionResync, targets, "every phone")
		if err != nil {
			b.Fatal(err)
		}
		<-rn.done
		results, _ := rn.snapshot()
		for _, r := range results {
			if r.OK || !r.Done {
				b.Fatalf("result %+v", r)
			}
		}
		h.Close()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/action")
}

// TestReleaseLoopGuard: a phone the firmware loop guard holds is offered
// the release; pressing it records exactly the event the guard reads, and
// the phone is held no more. The guard's derivation (inventory's
// StateFirmwareLoop) is another change's; until it is in the tree the
// phone below is not held and the test says so and skips.
func TestReleaseLoopGuard(t *testing.T) {
	f := newActionFixture(t, "pw")
	m := mustMAC("000413F00007")
	for i := range 3 { // the same image three times within minutes, the version unchanged
		f.store.Record(inventory.Observation{MAC: m, Model: "snomD785", Firmware: "10.1.33.33", IP: netip.MustParseAddr("10.77.0.107"),
			Event: inventory.Event{Time: fixtureNow.Add(time.Duration(i-3) * time.Minute), Step: inventory.StepFirmwareImage,
				Kind: inventory.HTTPKind(200), OK: true, Detail: "GET /firmware/snomD785-10.1.73.4-SIP-r.bin 200 812B"}})
	}
	p := mustPhone(t, f, m)
	if st, _ := p.State(fixtureNow, f.o.StaleAfter); st != inventory.StateFirmwareLoop {
		t.Skipf("the loop guard does not hold the phone in this tree (state %s): its derivation is not merged yet", st)
	}
	auth := func(r *http.Request) { r.SetBasicAuth("admin", "pw") }
	if page := get(t, f.h, phoneURL(m), auth); !strings.Contains(page.body, `id="release"`) {
		t.Fatal("a phone the loop guard holds is not offered the release")
	}
	res := f.results(t, f.post(t, "/actions", formType, form("action", "release", "mac", m.String(), "token", f.token()), sameSite()...))
	if row := rowOf(res.body, "result-"+m.String()); !strings.Contains(row, "ok") || !strings.Contains(row, "released by admin from the status page") {
		t.Errorf("result row %q", row)
	}
	got := actionEvents(f.store)
	want := inventory.Event{Step: inventory.StepAction, Kind: inventory.KindLoopCleared, OK: true, Detail: "released by admin from the status page", IP: "10.77.0.107"}
	if len(got) != 1 || got[0].MAC != m || got[0].Event.Step != want.Step || got[0].Event.Kind != want.Kind ||
		got[0].Event.OK != want.OK || got[0].Event.Detail != want.Detail || got[0].Event.IP != want.IP {
		t.Fatalf("recorded %+v, want one %+v", got, want)
	}
	if len(f.sip.sentTo()) != 0 {
		t.Error("a release sent something to the phone")
	}
	if st, _ := mustPhone(t, f, m).State(fixtureNow, f.o.StaleAfter); st == inventory.StateFirmwareLoop {
		t.Error("still held after the release")
	}
}

// FuzzTokenCheck: no string but a minted token passes, and checking never
// panics, whatever the client sends.
func FuzzTokenCheck(f *testing.F) {
	tk := newTokens()
	good := tk.mint("admin", "pw", fixtureNow)
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("99999999999.AAAA")
	f.Add(good[:len(good)-1] + "A")
	f.Add(strings.Repeat("9", 200) + "." + good)
	f.Fuzz(func(t *testing.T, tok string) {
		err := tk.check(tok, "admin", "pw", fixtureNow)
		if (err == nil) != (tok == good) {
			t.Fatalf("check(%q) = %v", tok, err)
		}
	})
}

// FuzzActionForm: whatever the body of a POST /actions with valid
// credentials from the page's origin, the handler answers without a 5xx
// (but the 503 of a busy runner), and sends only when the body carries the
// token.
func FuzzActionForm(f *testing.F) {
	f.Add("action=resync&mac=000413B00002&token=TOKEN")
	f.Add("action=reboot&scope=filter&state=failed&token=TOKEN")
	f.Add("action=release&mac=zz&token=TOKEN")
	f.Add("action=resync&scope=filter&state=nope&token=TOKEN")
	f.Add("%zz&token=TOKEN")
	f.Add("action=resync&mac=000413B00002")
	f.Fuzz(func(t *testing.T, body string) {
		fx := newActionFixture(t, "pw")
		body = strings.ReplaceAll(body, "TOKEN", url.QueryEscape(fx.token()))
		r := fx.post(t, "/actions", formType, body, sameSite()...)
		if r.code >= 500 && r.code != http.StatusServiceUnavailable {
			t.Fatalf("%q: %d %s", body, r.code, r.body)
		}
		if len(fx.sip.sentTo()) > 0 && !strings.Contains(body, fx.token()) && !strings.Contains(body, url.QueryEscape(fx.token())) {
			t.Fatalf("%q: sent without the token", body)
		}
	})
}

// TestRebootManyIsConfirmed: a reboot of several phones first shows them
// and asks once more, sending nothing; the confirm form carries the same
// choice and reboots them.
func TestRebootManyIsConfirmed(t *testing.T) {
	f := newActionFixture(t, "pw")
	r := f.post(t, "/actions", formType, form("action", "reboot", "scope", "filter", "q", "10.77.0.10", "token", f.token()), sameSite()...)
	if r.code != 200 || !strings.Contains(r.body, "Reboot 5 phones?") || !strings.Contains(r.body, `id="confirm-reboot"`) {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if n := len(f.sip.sentTo()); n != 0 {
		t.Fatalf("sent %d NOTIFYs before the confirmation", n)
	}
	// Send the confirmation form as a browser would.
	fields := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(r.body, -1) {
		fields.Add(m[1], html.UnescapeString(m[2]))
	}
	if fields.Get("confirm") != "yes" || fields.Get("q") != "10.77.0.10" || fields.Get("scope") != "filter" || fields.Get("action") != "reboot" {
		t.Fatalf("confirm form %v", fields)
	}
	res := f.results(t, f.post(t, "/actions", formType, fields.Encode(), sameSite()...))
	if !strings.Contains(res.body, "5 ok, 0 failed") {
		t.Errorf("results:\n%s", res.body)
	}
	if c := f.sip.calls; len(c) != 1 || !c[0].Reboot || len(c[0].Targets) != 5 {
		t.Errorf("calls %+v", c)
	}
}
