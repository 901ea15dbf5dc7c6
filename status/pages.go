package status

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

var (
	listTmpl    = template.Must(template.ParseFS(templateFS, "templates/base.html", "templates/list.html"))
	phoneTmpl   = template.Must(template.ParseFS(templateFS, "templates/base.html", "templates/phone.html"))
	runTmpl     = template.Must(template.ParseFS(templateFS, "templates/base.html", "templates/run.html"))
	confirmTmpl = template.Must(template.ParseFS(templateFS, "templates/base.html", "templates/confirm.html"))
)

const timeLayout = "2006-01-02 15:04:05 MST"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(timeLayout)
}

type page struct {
	Title   string
	Version string
	Now     string
	Refresh int // seconds; 0 = no meta refresh
	// Actions: the page offers the installer's actions, and Token is the
	// anti-CSRF token their forms carry.
	Actions bool
	Token   string
}

func (h *Handler) newPage(o *Options, title string) page {
	v := o.Version
	if v == "" {
		v = "dev"
	}
	pg := page{Title: title, Version: v, Now: formatTime(o.Now())}
	if o.actionsOn() {
		pg.Actions, pg.Token = true, h.tokens.mint(o.AdminUser, o.AdminPassword, o.Now())
	}
	return pg
}

type poolData struct {
	On      bool
	Meters  []poolMeter
	Several bool // more than one: the heading says pools
	Named   bool // each meter names its subnet: several, or one that is not the LAN's
}

type poolMeter struct {
	Subnet      string
	Used, Total int
	Percent     int
	Low, High   int // <meter> thresholds: 75% and 90% of the pool
}

type countData struct {
	State  inventory.State
	N      int
	URL    string
	Active bool
}

type rowData struct {
	MAC, MACColon, URL            string
	Site                          string
	Model, Firmware, IP, Hostname string
	State                         inventory.State
	Reason, Hint                  string
	LastSeen, LastSeenAbs         string
}

type listData struct {
	page
	HasHealth     bool
	Health        []Component
	Pool          *poolData
	Rollouts      []rollout.Summary // staged firmware rollouts; nil: no box
	Total         int
	AllURL        string
	AllActive     bool
	Counts        []countData
	States        []inventory.State
	Sites         []string // of a shared inventory; none: no site column
	Filter        filter
	FilterError   string
	Rows          []rowData
	Scope         string // the phones "all shown" acts on, in words
	RefreshToggle string // the same list with auto-refresh switched
	RefreshLabel  string
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	d := listData{page: h.newPage(o, "Phones"), States: inventory.States}
	f, err := parseFilter(r)
	if err != nil {
		d.FilterError = err.Error()
	}
	d.Filter = f
	d.Refresh = f.Refresh
	if o.Health != nil {
		d.HasHealth = true
		d.Health = o.Health()
		// Failures first: they are what the installer came for.
		sort.SliceStable(d.Health, func(i, j int) bool { return !d.Health[i].OK && d.Health[j].OK })
	}
	if o.PoolUsage != nil {
		pools, on := o.PoolUsage()
		p := &poolData{}
		lanMeter := false
		for _, pl := range pools {
			if !on || pl.Total <= 0 {
				continue
			}
			lanMeter = lanMeter || pl.LAN
			p.Meters = append(p.Meters, poolMeter{Subnet: pl.Subnet, Used: pl.Used, Total: pl.Total,
				Percent: pl.Used * 100 / pl.Total, Low: pl.Total * 3 / 4, High: pl.Total * 9 / 10})
		}
		p.On, p.Several = len(p.Meters) > 0, len(p.Meters) > 1
		p.Named = p.Several || (p.On && !lanMeter)
		d.Pool = p
	}
	d.Rollouts = rolloutsView(o)
	now := o.Now()
	counts := map[inventory.State]int{}
	sites := map[string]bool{}
	for _, p := range o.Inventory.Phones() {
		if p.Site != "" && !sites[p.Site] {
			sites[p.Site] = true
			d.Sites = append(d.Sites, p.Site)
		}
		if f.Site != "" && p.Site != f.Site {
			continue // the counts are the site's
		}
		st, reason := p.State(now, o.StaleAfter)
		counts[st]++
		d.Total++
		if !f.match(p, st, reason) {
			continue
		}
		d.Rows = append(d.Rows, rowData{
			MAC: p.MAC.String(), MACColon: p.MAC.Colon(), URL: phoneURL(p.MAC),
			Site: p.Site, Model: p.Model, Firmware: p.Firmware, IP: p.IP, Hostname: p.Hostname,
			State: st, Reason: reason, Hint: hint(p, st),
			LastSeen: ago(now, p.LastSeen), LastSeenAbs: formatTime(p.LastSeen),
		})
	}
	sort.Strings(d.Sites)
	d.Scope = f.describe()
	d.AllURL, d.AllActive = f.url("", f.Refresh), f.State == ""
	for _, st := range inventory.States {
		d.Counts = append(d.Counts, countData{State: st, N: counts[st], URL: f.url(st, f.Refresh), Active: f.State == st})
	}
	if f.Refresh > 0 {
		d.RefreshToggle, d.RefreshLabel = f.url(f.State, 0), fmt.Sprintf("stop auto-refresh (every %d s)", f.Refresh)
	} else {
		d.RefreshToggle, d.RefreshLabel = f.url(f.State, defaultRefresh), fmt.Sprintf("auto-refresh every %d s", defaultRefresh)
	}
	code := http.StatusOK
	if d.FilterError != "" {
		code = http.StatusBadRequest
	}
	render(w, code, listTmpl, d)
}

type stepRow struct {
	Label, Result, Class  string
	When, TimeAbs, Detail string
}

type eventRow struct {
	Time, Step, Kind, Detail, IP string
	OK                           bool
}

type phoneData struct {
	page
	MAC, MACColon, URL            string
	Seen                          bool
	Model, Firmware, IP, Hostname string
	Site                          string
	FirstSeen, LastSeen           string
	LastSeenAgo                   string
	State                         inventory.State
	Reason, Hint                  string
	Looping                       bool // held by the firmware loop guard: it can be released
	Steps                         []stepRow
	Events                        []eventRow
	HasPreview                    bool
	PreviewModel                  string
	Preview                       []previewFile
	PreviewError                  string
	Mask                          string
}

func (h *Handler) phone(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	mac, err := phone.ParseMAC(r.PathValue("mac"))
	if err != nil {
		http.Error(w, "400 "+err.Error()+"; write the MAC as 000413A11FA7 or 00:04:13:a1:1f:a7", http.StatusBadRequest)
		return
	}
	now := o.Now()
	d := phoneData{page: h.newPage(o, mac.String()), MAC: mac.String(), MACColon: mac.Colon(), URL: phoneURL(mac), Mask: redact.Mask}
	d.Refresh = refresh(r)
	p, seen := o.Inventory.Phone(mac)
	if seen {
		d.Seen = true
		d.Model, d.Firmware, d.IP, d.Hostname, d.Site = p.Model, p.Firmware, p.IP, p.Hostname, p.Site
		d.FirstSeen, d.LastSeen, d.LastSeenAgo = formatTime(p.FirstSeen), formatTime(p.LastSeen), ago(now, p.LastSeen)
		d.State, d.Reason = p.State(now, o.StaleAfter)
		d.Hint = hint(p, d.State)
		d.Looping = d.State == inventory.StateFirmwareLoop
		steps := append([]inventory.Step(nil), inventory.Steps...)
		for _, extra := range []inventory.Step{inventory.StepBootstrap, inventory.StepFile} {
			if _, ok := p.Steps[extra]; ok {
				steps = append(steps, extra)
			}
		}
		for _, st := range steps {
			row := stepRow{Label: stepLabel(st), Result: "not yet", Class: "none", When: "never"}
			if res, ok := p.Steps[st]; ok {
				row.Result, row.Class = "ok", "ok"
				if !res.OK {
					row.Result, row.Class = "failed", "bad"
				}
				row.When, row.TimeAbs, row.Detail = ago(now, res.Time), formatTime(res.Time), res.Detail
			}
			d.Steps = append(d.Steps, row)
		}
		for i := len(p.Events) - 1; i >= 0; i-- {
			e := p.Events[i]
			d.Events = append(d.Events, eventRow{Time: formatTime(e.Time), Step: stepLabel(e.Step), Kind: string(e.Kind),
				Detail: e.Detail, IP: e.IP, OK: e.OK})
		}
	}
	if o.Preview != nil {
		d.HasPreview = true
		d.PreviewModel = strings.TrimSpace(r.URL.Query().Get("model"))
		if d.PreviewModel == "" {
			d.PreviewModel = p.Model
		}
		if len(d.PreviewModel) > 64 {
			d.PreviewModel = d.PreviewModel[:64]
		}
		files, err := o.Preview(mac, d.PreviewModel)
		if err != nil {
			d.PreviewError = err.Error()
		} else {
			d.Preview = previewFiles(files)
		}
	}
	// An unseen phone's page still exists: it previews what the phone will
	// get, which is how a config is checked before unboxing. The API says
	// 404 for it.
	render(w, http.StatusOK, phoneTmpl, d)
}

// render executes into a buffer first so a template error becomes a 500
// instead of half a page.
func render(w http.ResponseWriter, code int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base", data); err != nil {
		http.Error(w, "500 rendering the status page failed: "+err.Error()+"; please report this", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("file") != "style.css" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	http.ServeContent(w, r, "style.css", time.Time{}, bytes.NewReader(styleCSS))
}

type runRow struct {
	MAC, URL, IP, Result, Class, Detail string
}

type runData struct {
	page
	Label, Scope, By, Started string
	Running                   bool
	Total, Done, OK, Failed   int
	Skipped                   int
	Rows                      []runRow
}

// runPage is GET /actions/{id}: what an action did to each phone so far.
// While it runs the page reloads itself.
func (h *Handler) runPage(w http.ResponseWriter, r *http.Request) {
	o := h.opts.Load()
	rn := h.runner.get(r.PathValue("id"))
	if rn == nil {
		http.Error(w, "404 no such action: only the last 50 are kept, and none across a restart; each phone's timeline still shows what was done to it", http.StatusNotFound)
		return
	}
	results, finished := rn.snapshot()
	d := runData{page: h.newPage(o, rn.action.label()), Label: rn.action.label(), Scope: rn.scope, By: rn.by,
		Started: formatTime(rn.started), Running: !finished, Total: len(results)}
	if !finished {
		d.Refresh = runRefresh
	}
	for _, res := range results {
		row := runRow{MAC: res.MAC.String(), URL: phoneURL(res.MAC), IP: res.IP, Detail: res.Detail}
		switch {
		case !res.Done:
			row.Result, row.Class = "waiting", "none"
		case res.Skipped:
			row.Result, row.Class = "skipped", "none"
			d.Done++
			d.Skipped++
		case res.OK:
			row.Result, row.Class = "ok", "ok"
			d.Done++
			d.OK++
		default:
			row.Result, row.Class = "failed", "bad"
			d.Done++
			d.Failed++
		}
		d.Rows = append(d.Rows, row)
	}
	render(w, http.StatusOK, runTmpl, d)
}

type hiddenField struct{ Name, Value string }

type confirmData struct {
	page
	Scope  string
	N      int
	Fields []hiddenField // the form as it came, to send again with confirm=yes
	Phones []rowData
}

// confirmPage asks once more before a reboot of several phones, listing
// them; its button sends the same form with confirm=yes and a fresh token.
func (h *Handler) confirmPage(w http.ResponseWriter, o *Options, form url.Values, targets []target, scope string) {
	d := confirmData{page: h.newPage(o, "Reboot "+strconv.Itoa(len(targets))+" phones?"), Scope: scope, N: len(targets)}
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if k == tokenField || k == "confirm" {
			continue
		}
		for _, v := range form[k] {
			d.Fields = append(d.Fields, hiddenField{Name: k, Value: v})
		}
	}
	for _, t := range targets {
		d.Phones = append(d.Phones, rowData{MAC: t.mac.String(), URL: phoneURL(t.mac), Model: t.p.Model, IP: t.p.IP})
	}
	render(w, http.StatusOK, confirmTmpl, d)
}
