package status

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/statusfixture"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// The fixture (internal/statusfixture, shared with test/browser).
var (
	fixtureNow  = statusfixture.Now
	macUpToDate = statusfixture.MACUpToDate
	macFailed   = statusfixture.MACFailed
	macStale    = statusfixture.MACStale
	macPnP      = statusfixture.MACPnP
	macSeen     = statusfixture.MACSeen
	macUnknown  = mustMAC("000413FFFFFF")
)

const failReason = statusfixture.FailReason

func mustMAC(s string) phone.MAC {
	m, err := phone.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func fixtureStore(t testing.TB) *inventory.Store { return statusfixture.Store(t) }

func fakePreview(mac phone.MAC, model string) ([]File, error) {
	files, err := statusfixture.Preview(mac, model)
	out := make([]File, len(files))
	for i, f := range files {
		out[i] = File(f)
	}
	return out, err
}

func fixturePools() ([]Pool, bool) {
	pools, ok := statusfixture.Pools()
	out := make([]Pool, len(pools))
	for i, p := range pools {
		out[i] = Pool(p)
	}
	return out, ok
}

func fixtureOptions(t testing.TB) Options {
	return Options{
		Inventory: fixtureStore(t),
		Preview:   fakePreview,
		PoolUsage: fixturePools,
		Health: func() []Component {
			return []Component{{Name: "http", OK: true, Detail: ":8080"}, {Name: "pnp", OK: false, Detail: "eth0: no multicast"}}
		},
		StaleAfter: statusfixture.StaleAfter,
		Metrics:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics here\n") }),
		Version:    "test",
		Now:        func() time.Time { return fixtureNow },
	}
}

type response struct {
	code int
	hdr  http.Header
	body string
}

func get(t testing.TB, h http.Handler, target string, setup ...func(*http.Request)) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, f := range setup {
		f(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

// rowMACs returns the MACs of the table rows in a rendered list page.
func rowMACs(body string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`<tr class="row [^"]*" id="phone-([0-9A-F]{12})">`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestListPage(t *testing.T) {
	h := New(fixtureOptions(t))
	cases := []struct {
		name     string
		target   string
		code     int
		rows     []string
		contains []string
	}{
		{"all", "/", 200,
			[]string{"000413A11FA7", "000413B00002", "000413C00003", "000413D00004", "000413E00005"},
			[]string{failReason, "snomD785", "10.1.33.33", "10.77.0.101", "37</b> of 100 addresses", "eth0: no multicast", "8m ago", "3d ago",
				`class="badge st-up-to-date">up-to-date`, `class="badge st-failed">failed`, `class="badge st-stale">stale`,
				`class="badge st-pnp-answered">pnp-answered`, `class="badge st-seen">seen`}},
		{"state failed", "/?state=failed", 200, []string{"000413B00002"}, []string{failReason, "snomprov render MAC"}},
		{"state stale", "/?state=stale", 200, []string{"000413C00003"}, []string{"Not seen for a while"}},
		{"state with no phones", "/?state=firmware-fetched", 200, nil, []string{"No phone matches this filter", "Show all 5 phones"}},
		{"q model", "/?q=d785", 200, []string{"000413A11FA7"}, nil},
		{"q colon MAC", "/?q=a1:1f:a7", 200, []string{"000413A11FA7"}, nil},
		{"q IP", "/?q=10.77.0.104", 200, []string{"000413D00004"}, nil},
		{"q reason", "/?q=not+in+config", 200, []string{"000413B00002"}, nil},
		{"state and q", "/?state=failed&q=D785", 200, nil, []string{"No phone matches"}},
		{"unknown state", "/?state=broken", 400,
			[]string{"000413A11FA7", "000413B00002", "000413C00003", "000413D00004", "000413E00005"},
			[]string{"unknown state &#34;broken&#34;: use one of seen, leased"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, h, tc.target)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d\n%s", r.code, tc.code, r.body)
			}
			if got := rowMACs(r.body); strings.Join(got, ",") != strings.Join(tc.rows, ",") {
				t.Errorf("rows %v, want %v", got, tc.rows)
			}
			for _, s := range tc.contains {
				if !strings.Contains(r.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			if ct := r.hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestListPageCountsAndOfflineAssets(t *testing.T) {
	h := New(fixtureOptions(t))
	r := get(t, h, "/?q=D7")
	// Counts cover every phone, whatever the filter, and keep the query in their links.
	for _, want := range []string{
		`href="/?q=D7">all <b>5</b>`, `href="/?q=D7&amp;state=failed">failed <b>1</b>`,
		`href="/?q=D7&amp;state=up-to-date">up-to-date <b>1</b>`, `href="/?q=D7&amp;state=leased">leased <b>0</b>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing is fetched from another origin: an offline LAN must work.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`).FindString(r.body); m != "" {
		t.Errorf("page references another origin: %s", m)
	}
	if strings.Contains(r.body, "<script") {
		t.Error("page has a script; it must work without JavaScript")
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	css := get(t, h, "/static/style.css")
	if css.code != 200 || css.hdr.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(css.body, ".badge") {
		t.Errorf("style.css: %d %q", css.code, css.hdr.Get("Content-Type"))
	}
	if strings.Contains(css.body, "url(") || strings.Contains(css.body, "@import") {
		t.Error("style.css loads something else")
	}
	if r := get(t, h, "/static/other.js"); r.code != 404 {
		t.Errorf("/static/other.js: %d", r.code)
	}
}

func TestListPageBoxes(t *testing.T) {
	cases := []struct {
		name     string
		mod      func(*Options)
		contains []string
		lacks    []string
	}{
		{"no pool, no health", func(o *Options) { o.PoolUsage, o.Health = nil, nil }, nil, []string{`id="pool"`, `id="health"`}},
		{"dhcp off", func(o *Options) { o.PoolUsage = func() ([]Pool, bool) { return nil, false } },
			[]string{"DHCP is off"}, []string{"addresses in use"}},
		{"one pool", nil, []string{"<h2>DHCP pool</h2>", "<p><b>37</b> of 100 addresses in use (37%)</p>",
			`<meter min="0" max="100" low="75" high="90" optimum="0" value="37" data-subnet="10.77.0.0/24">37%</meter>`}, []string{"DHCP pools", `class="subnet"`}},
		{"a pool per subnet, the primary first", func(o *Options) {
			o.PoolUsage = func() ([]Pool, bool) {
				return []Pool{{Subnet: "10.77.0.0/24", LAN: true, Used: 37, Total: 100}, {Subnet: "10.20.0.0/24", Used: 45, Total: 50}, {Subnet: "10.30.0.0/24"}}, true
			}
		}, []string{"<h2>DHCP pools</h2>",
			`<p><span class="subnet">10.77.0.0/24</span>: <b>37</b> of 100 addresses in use (37%)</p>`,
			`<p><span class="subnet">10.20.0.0/24</span>: <b>45</b> of 50 addresses in use (90%)</p>`,
			`<meter min="0" max="50" low="37" high="45" optimum="0" value="45" data-subnet="10.20.0.0/24">90%</meter>`},
			[]string{"10.30.0.0/24", "DHCP is off"}},
		{"one subnet's pool, none on the LAN: named", func(o *Options) {
			o.PoolUsage = func() ([]Pool, bool) { return []Pool{{Subnet: "10.20.0.0/24", Used: 5, Total: 50}}, true }
		}, []string{"<h2>DHCP pool</h2>", `<p><span class="subnet">10.20.0.0/24</span>: <b>5</b> of 50 addresses in use (10%)</p>`}, []string{"DHCP pools"}},
		{"failing component first", nil, []string{`<li class="bad"><span class="mark">FAIL</span> <b>pnp</b>`}, nil},
		{"empty inventory", func(o *Options) { o.Inventory = nil }, []string{"No phones seen yet", "snomprov doctor"}, []string{`id="phones"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := fixtureOptions(t)
			if tc.mod != nil {
				tc.mod(&o)
			}
			r := get(t, New(o), "/")
			for _, s := range tc.contains {
				if !strings.Contains(r.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(r.body, s) {
					t.Errorf("page has %q", s)
				}
			}
			if tc.name == "a pool per subnet, the primary first" && strings.Index(r.body, "10.77.0.0/24") > strings.Index(r.body, "10.20.0.0/24") {
				t.Error("the primary's pool is not first")
			}
			if tc.name == "failing component first" && strings.Index(r.body, "<b>pnp</b>") > strings.Index(r.body, "<b>http</b>") {
				t.Error("failed component not listed first")
			}
		})
	}
}

func TestPhonePage(t *testing.T) {
	h := New(fixtureOptions(t))
	cases := []struct {
		name     string
		target   string
		code     int
		contains []string
		lacks    []string
	}{
		{"failed phone", "/phones/000413B00002", 200,
			[]string{`id="state">failed`, failReason, "snomprov render MAC", "Phone file", "General file", "DHCP lease",
				"not yet", "leased 10.77.0.102", "/snomD735-000413B00002.htm", "00:04:13:b0:00:02"},
			[]string{"s3cr3t-sip", "hunter2"}},
		{"secrets masked", "/phones/000413A11FA7", 200,
			[]string{`<user_pass idx="1" perm="R">********</user_pass>`, "http://admin:********@10.77.0.1:8080/",
				`<user_name idx="1" perm="R">101</user_name>`, "Binary file, not shown", "/firmware/snomD785-10.1.33.33.bin"},
			[]string{"s3cr3t-sip", "hunter2"}},
		{"preview for another model", "/phones/000413A11FA7?model=snomD717", 200, []string{"/snomD717-000413A11FA7.htm"}, nil},
		{"model unknown", "/phones/000413E00005?model=", 200, []string{`id="state">seen`, "/snomD385.htm"}, nil},
		{"unknown phone", "/phones/000413FFFFFF", 200, []string{"has not been seen", `id="preview-error"`, "give the model"}, []string{`id="timeline"`}},
		{"unknown phone with model", "/phones/000413FFFFFF?model=snomD785", 200, []string{"/snomD785-000413FFFFFF.htm"}, nil},
		{"bad MAC", "/phones/nonsense", 400, []string{"bad MAC address", "000413A11FA7"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, h, tc.target)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d\n%s", r.code, tc.code, r.body)
			}
			text := html.UnescapeString(r.body) // the preview is escaped XML
			for _, s := range tc.contains {
				if !strings.Contains(text, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.lacks {
				if strings.Contains(text, s) {
					t.Errorf("page shows %q", s)
				}
			}
		})
	}
}

func TestPhonePageTimelineNewestFirst(t *testing.T) {
	h := New(fixtureOptions(t))
	r := get(t, h, "/phones/000413A11FA7")
	timeline := r.body[strings.Index(r.body, `id="timeline"`):]
	i, j := strings.Index(timeline, "/firmware/snomD785-10.1.33.33.bin"), strings.Index(timeline, "leased 10.77.0.101")
	if i < 0 || j < 0 || i > j {
		t.Errorf("timeline not newest first (image at %d, lease at %d)", i, j)
	}
	if n := strings.Count(r.body, "<tr class=\"ok\">"); n != 6 {
		t.Errorf("%d timeline rows, want 6", n)
	}
}

func TestPhonePageAnyMACSpelling(t *testing.T) {
	h := New(fixtureOptions(t))
	for _, spelling := range []string{"000413A11FA7", "000413a11fa7", "00:04:13:a1:1f:a7", "00-04-13-A1-1F-A7", "0004.13a1.1fa7"} {
		r := get(t, h, "/phones/"+spelling+"?model=snomD785")
		if r.code != http.StatusOK || !strings.Contains(r.body, "Phone <span class=\"mac\">000413A11FA7</span>") {
			t.Errorf("%s: status %d", spelling, r.code)
		}
	}
	// List links use the colon spelling, which the phone router never
	// takes for a file name.
	if r := get(t, h, "/"); !strings.Contains(r.body, `<a href="/phones/00:04:13:a1:1f:a7" title="00:04:13:a1:1f:a7">000413A11FA7</a>`) {
		t.Error("list does not link the phone page with the colon MAC")
	}
}

func TestPhonePageWithoutPreview(t *testing.T) {
	o := fixtureOptions(t)
	o.Preview = nil
	r := get(t, New(o), "/phones/000413A11FA7")
	if r.code != 200 || strings.Contains(r.body, "What this phone gets") {
		t.Errorf("status %d; preview box shown without a Preview func", r.code)
	}
}

func TestPreviewDenied(t *testing.T) {
	o := fixtureOptions(t)
	o.Preview = func(phone.MAC, string) ([]File, error) { return nil, nil }
	r := get(t, New(o), "/phones/000413A11FA7")
	if !strings.Contains(r.body, "serves this phone no settings files") {
		t.Error("an empty preview is not explained")
	}
}

func TestAPI(t *testing.T) {
	h := New(fixtureOptions(t))
	t.Run("list", func(t *testing.T) {
		r := get(t, h, "/api/phones")
		if r.code != 200 || r.hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, %q", r.code, r.hdr.Get("Content-Type"))
		}
		var list []apiPhoneJSON
		if err := json.Unmarshal([]byte(r.body), &list); err != nil {
			t.Fatal(err)
		}
		want := map[phone.MAC]inventory.State{macUpToDate: "up-to-date", macFailed: "failed", macStale: "stale",
			macPnP: "pnp-answered", macSeen: "seen"}
		if len(list) != len(want) {
			t.Fatalf("%d phones, want %d", len(list), len(want))
		}
		for _, p := range list {
			if p.State != want[p.MAC] {
				t.Errorf("%s: state %q, want %q", p.MAC, p.State, want[p.MAC])
			}
			if p.Events != nil {
				t.Errorf("%s: list carries events", p.MAC)
			}
		}
		if !strings.Contains(r.body, `"mac": "000413B00002"`) || !strings.Contains(r.body, `"reason": "phone: `+failReason+`"`) {
			t.Errorf("list JSON lacks MAC or reason:\n%s", r.body)
		}
	})
	cases := []struct {
		target string
		code   int
		macs   []string
	}{
		{"/api/phones?state=failed", 200, []string{"000413B00002"}},
		{"/api/phones?state=up-to-date", 200, []string{"000413A11FA7"}},
		{"/api/phones?state=firmware-fetched", 200, []string{}},
		{"/api/phones?q=snomD1", 200, []string{"000413C00003"}},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			r := get(t, h, tc.target)
			var list []struct {
				MAC string `json:"mac"`
			}
			if err := json.Unmarshal([]byte(r.body), &list); err != nil || r.code != tc.code {
				t.Fatalf("status %d, %v: %s", r.code, err, r.body)
			}
			got := []string{}
			for _, p := range list {
				got = append(got, p.MAC)
			}
			if strings.Join(got, ",") != strings.Join(tc.macs, ",") {
				t.Errorf("got %v, want %v", got, tc.macs)
			}
		})
	}
	errCases := []struct {
		target, contains string
		code             int
	}{
		{"/api/phones?state=nope", "unknown state", 400},
		{"/api/phones/000413FFFFFF", "has not been seen", 404},
		{"/api/phones/zz", "bad MAC address", 400},
	}
	for _, tc := range errCases {
		t.Run(tc.target, func(t *testing.T) {
			r := get(t, h, tc.target)
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.code != tc.code || !strings.Contains(e.Error, tc.contains) {
				t.Errorf("status %d (want %d), error %q (want %q), %v", r.code, tc.code, e.Error, tc.contains, err)
			}
		})
	}
	t.Run("one phone", func(t *testing.T) {
		for _, spelling := range []string{"000413B00002", "00:04:13:b0:00:02", "00-04-13-B0-00-02"} {
			r := get(t, h, "/api/phones/"+spelling)
			var p apiPhoneJSON
			if err := json.Unmarshal([]byte(r.body), &p); err != nil || r.code != 200 {
				t.Fatalf("%s: status %d, %v", spelling, r.code, err)
			}
			if p.MAC != macFailed || p.State != inventory.StateFailed || p.Model != "snomD735" || p.Firmware != "10.1.20.1" ||
				p.IP != "10.77.0.102" || len(p.Events) != 3 || !p.Steps[inventory.StepGeneral].OK || p.Steps[inventory.StepPhone].OK ||
				p.Steps[inventory.StepPhone].Detail != failReason || p.Events[2].Kind != "404" {
				t.Errorf("%s: %+v", spelling, p)
			}
		}
	})
}

func TestAuth(t *testing.T) {
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	cases := []struct {
		name     string
		user     string
		password string
		target   string
		auth     func(*http.Request)
		code     int
	}{
		{"open without a password", "", "", "/", nil, 200},
		{"open API without a password", "", "", "/api/phones", nil, 200},
		{"page needs auth", "", "pw", "/", nil, 401},
		{"API needs auth", "", "pw", "/api/phones", nil, 401},
		{"phone API needs auth", "", "pw", "/api/phones/000413A11FA7", nil, 401},
		{"phone page needs auth", "", "pw", "/phones/000413A11FA7", nil, 401},
		{"metrics need auth", "", "pw", "/metrics", nil, 401},
		{"css needs auth", "", "pw", "/static/style.css", nil, 401},
		{"wrong password", "", "pw", "/", basic("admin", "wrong"), 401},
		{"wrong user", "", "pw", "/", basic("root", "pw"), 401},
		{"password prefix", "", "pw", "/", basic("admin", "p"), 401},
		{"default user admin", "", "pw", "/", basic("admin", "pw"), 200},
		{"custom user", "installer", "pw", "/api/phones", basic("installer", "pw"), 200},
		{"custom user, admin refused", "installer", "pw", "/", basic("admin", "pw"), 401},
		{"unknown path is 404, not 401", "", "pw", "/snomD785-000413A11FA7.cfg", nil, 404},
		{"unknown path open", "", "", "/y000000000046.cfg", nil, 404},
		{"favicon needs no password", "", "pw", "/favicon.ico", nil, 204},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := fixtureOptions(t)
			o.AdminUser, o.AdminPassword = tc.user, tc.password
			var setup []func(*http.Request)
			if tc.auth != nil {
				setup = append(setup, tc.auth)
			}
			r := get(t, New(o), tc.target, setup...)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d", r.code, tc.code)
			}
			if r.code == 401 {
				if wa := r.hdr.Get("WWW-Authenticate"); wa != `Basic realm="snomprov status", charset="UTF-8"` {
					t.Errorf("WWW-Authenticate = %q", wa)
				}
				if !strings.Contains(r.body, "admin_password") {
					t.Errorf("401 body does not say what to do: %q", r.body)
				}
				if strings.Contains(r.body, "000413") {
					t.Error("401 leaks inventory data")
				}
			}
		})
	}
}

func TestReloadSwapsOptions(t *testing.T) {
	o := fixtureOptions(t)
	h := New(o)
	if r := get(t, h, "/api/phones"); r.code != 200 {
		t.Fatalf("before reload: %d", r.code)
	}
	o.AdminPassword = "new"
	o.StaleAfter = 0 // no stale phones any more
	h.Reload(o)
	if r := get(t, h, "/api/phones"); r.code != 401 {
		t.Errorf("after reload without auth: %d", r.code)
	}
	r := get(t, h, "/api/phones?state=stale", func(r *http.Request) { r.SetBasicAuth("admin", "new") })
	if r.code != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("after reload: %d %s", r.code, r.body)
	}
}

func TestMetricsDelegation(t *testing.T) {
	o := fixtureOptions(t)
	if r := get(t, New(o), "/metrics"); r.code != 200 || r.body != "# metrics here\n" {
		t.Errorf("metrics: %d %q", r.code, r.body)
	}
	o.Metrics = nil
	if r := get(t, New(o), "/metrics"); r.code != 404 {
		t.Errorf("nil metrics: %d", r.code)
	}
}

func TestMethodsOtherThanGet(t *testing.T) {
	h := New(fixtureOptions(t))
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/api/phones", strings.NewReader("{}")))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /api/phones: %d", m, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/", nil))
	if rec.Code != 200 {
		t.Errorf("HEAD /: %d", rec.Code)
	}
}

func TestMaskSecrets(t *testing.T) {
	cases := []struct{ in, want string }{
		{`<user_pass idx="1" perm="R">x</user_pass>`, `<user_pass idx="1" perm="R">********</user_pass>`},
		{`<http_pass perm="R">abc</http_pass>`, `<http_pass perm="R">********</http_pass>`},
		{`<admin_mode_password perm="R">0000</admin_mode_password>`, `<admin_mode_password perm="R">********</admin_mode_password>`},
		{`<user_pname idx="1">101</user_pname>`, `<user_pname idx="1">101</user_pname>`},
		{`<user_name idx="1">101</user_name>`, `<user_name idx="1">101</user_name>`},
		{`<pnp_config>off</pnp_config>`, `<pnp_config>off</pnp_config>`},
		{`<user_pass idx="1"></user_pass>`, `<user_pass idx="1"></user_pass>`},
		{`<a_pass>x</b_pass>`, `<a_pass>x</b_pass>`},
		{`<setting_server>http://u:p@h/x</setting_server>`, `<setting_server>http://u:********@h/x</setting_server>`},
		{`<file url="https://prov:secret@pbx.example/a.xml"/>`, `<file url="https://prov:********@pbx.example/a.xml"/>`},
		{`http://host:8080/path`, `http://host:8080/path`},
		{"<dkey_pin>1234</dkey_pin>", "<dkey_pin>********</dkey_pin>"},
	}
	for _, tc := range cases {
		if got := maskSecrets(tc.in); got != tc.want {
			t.Errorf("maskSecrets(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := fixtureNow
	cases := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(time.Second), "just now"},
		{now.Add(-5 * time.Second), "5s ago"},
		{now.Add(-90 * time.Second), "1m ago"},
		{now.Add(-3 * time.Hour), "3h ago"},
		{now.Add(-47 * time.Hour), "47h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
	}
	for _, tc := range cases {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
}

// FuzzHandler: whatever path and query a client sends, the handler answers
// without panicking, never with a 5xx, and never unauthenticated when a
// password is set.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/", "/?state=failed&q=D785", "/phones/000413A11FA7", "/phones/00:04:13:a1:1f:a7?model=x",
		"/api/phones?state=x", "/api/phones/%zz", "/static/style.css", "/metrics", "/phones/", "//phones/1", "/api/phones/000413a11fa7",
		"/?q=%ff%fe", "/phones/000413A11FA7?model=" + strings.Repeat("A", 300)} {
		f.Add(s, false)
	}
	store := fixtureStore(f)
	f.Fuzz(func(t *testing.T, target string, locked bool) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t#") {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "http://snomprov"+target, nil)
		if err != nil {
			return
		}
		o := fixtureOptions(t)
		o.Inventory = store
		if locked {
			o.AdminPassword = "pw"
		}
		rec := httptest.NewRecorder()
		New(o).ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: status %d: %s", target, rec.Code, rec.Body.String())
		}
		if locked && rec.Code != 401 && rec.Code != 404 {
			t.Fatalf("%s: status %d without credentials", target, rec.Code)
		}
		if locked && rec.Code == 404 && strings.Contains(rec.Body.String(), "000413") {
			t.Fatalf("%s: data without credentials", target)
		}
		if strings.Contains(rec.Body.String(), "s3cr3t-sip") || strings.Contains(rec.Body.String(), "hunter2") {
			t.Fatalf("%s: secret shown", target)
		}
	})
}

// BenchmarkListPage5000 renders the list with the inventory at its default
// bound (5000 phones, 50 events each).
func BenchmarkListPage5000(b *testing.B) {
	o := fixtureOptions(b)
	o.Inventory = store5000(b, func(int) netip.Addr { return netip.MustParseAddr("10.0.0.1") })
	h := New(o)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// store5000 is the inventory at its default bound: 5000 phones with 50
// events each, phone i at ip(i).
func store5000(b *testing.B, ip func(i int) netip.Addr) *inventory.Store {
	store, err := inventory.Open("", inventory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 5000; i++ {
		m := phone.MAC{0x00, 0x04, 0x13, byte(i >> 16), byte(i >> 8), byte(i)}
		for j := 0; j < 50; j++ {
			store.Record(inventory.Observation{MAC: m, Model: "snomD785", IP: ip(i),
				Event: inventory.Event{Time: fixtureNow.Add(-time.Minute), Step: inventory.Steps[j%len(inventory.Steps)], Kind: "200", OK: j%7 != 0, Detail: "x"}})
		}
	}
	return store
}

func TestAutoRefresh(t *testing.T) {
	h := New(fixtureOptions(t))
	cases := []struct {
		target   string
		contains []string
		lacks    []string
	}{
		{"/", []string{`<a class="refresh" id="refresh" href="/?refresh=10">auto-refresh every 10 s</a>`}, []string{`http-equiv="refresh"`}},
		{"/?state=failed&refresh=30", []string{`<meta http-equiv="refresh" content="30">`,
			`href="/?state=failed">stop auto-refresh (every 30 s)</a>`,
			`<input type="hidden" name="refresh" value="30">`,
			`href="/?refresh=30&amp;state=stale">stale`}, nil},
		{"/?refresh=1", nil, []string{`http-equiv="refresh"`}},
		{"/?refresh=99999", nil, []string{`http-equiv="refresh"`}},
		{"/?refresh=abc", nil, []string{`http-equiv="refresh"`}},
		{"/phones/000413A11FA7?refresh=5", []string{`<meta http-equiv="refresh" content="5">`}, nil},
		{"/phones/000413A11FA7", nil, []string{`http-equiv="refresh"`}},
	}
	for _, tc := range cases {
		r := get(t, h, tc.target)
		if r.code != 200 {
			t.Errorf("%s: status %d", tc.target, r.code)
		}
		for _, s := range tc.contains {
			if !strings.Contains(r.body, s) {
				t.Errorf("%s lacks %q", tc.target, s)
			}
		}
		for _, s := range tc.lacks {
			if strings.Contains(r.body, s) {
				t.Errorf("%s has %q", tc.target, s)
			}
		}
	}
}

func TestHints(t *testing.T) {
	ev := func(step inventory.Step, kind inventory.Kind, ok bool) inventory.Phone {
		return inventory.Phone{MAC: macFailed, LastSeen: fixtureNow,
			Steps:  map[inventory.Step]inventory.StepResult{step: {Time: fixtureNow, OK: ok}},
			Events: []inventory.Event{{Time: fixtureNow, Step: inventory.StepDHCP, Kind: "ACK", OK: true}, {Time: fixtureNow, Step: step, Kind: kind, OK: ok}}}
	}
	cases := []struct {
		name string
		p    inventory.Phone
		want string // a part of the hint; "" for none
	}{
		{"dhcp nak", ev(inventory.StepDHCP, "NAK", false), "pool is not exhausted"},
		{"dhcp decline", ev(inventory.StepDHCP, "DECLINE", false), "another device already uses it"},
		{"pnp ignored", ev(inventory.StepPnP, "IGNORED", false), "[pnp] answer"},
		{"pnp timeout", ev(inventory.StepPnP, "NOTIFY-TIMEOUT", false), "not acknowledged"},
		{"pnp rejected", ev(inventory.StepPnP, "NOTIFY-REJECTED", false), "refused the PnP NOTIFY"},
		{"pnp send failed", ev(inventory.StepPnP, "NOTIFY-FAILED", false), "could not send"},
		{"phone 404", ev(inventory.StepPhone, "404", false), "snomprov render MAC"},
		{"general 401", ev(inventory.StepGeneral, "401", false), "HTTP credentials"},
		{"image 404", ev(inventory.StepFirmwareImage, "404", false), "http.firmware_dir"},
		{"ok", ev(inventory.StepPhone, "200", true), ""},
		{"untracked failure", ev(inventory.StepFile, "404", false), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := tc.p.State(fixtureNow, time.Hour)
			got := hint(tc.p, st)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("state %s: hint %q, want one with %q", st, got, tc.want)
			}
		})
	}
}

// sitesInventory is a shared inventory's view: the same MAC at two sites.
type sitesInventory []inventory.Phone

func (s sitesInventory) Phones() []inventory.Phone { return s }
func (s sitesInventory) Phone(m phone.MAC) (inventory.Phone, bool) {
	for _, p := range s {
		if p.MAC == m {
			return p, true
		}
	}
	return inventory.Phone{}, false
}

func TestSites(t *testing.T) {
	seen := func(m phone.MAC, site string) inventory.Phone {
		return inventory.Phone{MAC: m, Site: site, LastSeen: fixtureNow, Steps: map[inventory.Step]inventory.StepResult{}}
	}
	inv := sitesInventory{seen(macUpToDate, "berlin"), seen(macFailed, "paris"), seen(macSeen, "berlin")}
	o := fixtureOptions(t)
	o.Inventory = inv
	h := New(o)
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"/", []string{macUpToDate.String(), macFailed.String(), macSeen.String()}},
		{"/?site=berlin", []string{macUpToDate.String(), macSeen.String()}},
		{"/?site=paris", []string{macFailed.String()}},
		{"/?site=nowhere", nil},
	} {
		r := get(t, h, tc.target)
		if got := rowMACs(r.body); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: rows %v, want %v", tc.target, got, tc.want)
		}
		if !strings.Contains(r.body, `<select name="site">`) || (tc.want != nil && !strings.Contains(r.body, `<th>Site</th>`)) {
			t.Errorf("%s: no site filter or column", tc.target)
		}
	}
	if r := get(t, h, "/?site=paris&state=seen"); !strings.Contains(r.body, "site=paris") {
		t.Error("the state chips drop the site filter")
	}
	var api []map[string]any
	r := get(t, h, "/api/phones?site=paris")
	if err := json.Unmarshal([]byte(r.body), &api); err != nil || len(api) != 1 || api[0]["site"] != "paris" {
		t.Fatalf("/api/phones?site=paris = %s", r.body)
	}
	// The file store has no sites: no column.
	if r := get(t, New(fixtureOptions(t)), "/"); strings.Contains(r.body, `<th>Site</th>`) {
		t.Error("site column without sites")
	}
}
