package status

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// filter is the query of the list page and /api/phones:
// ?state=failed&q=D785&site=berlin.
type filter struct {
	State   inventory.State
	Q       string
	Site    string // a shared inventory's site; empty: every site
	Refresh int    // seconds between automatic reloads of the page; 0 = off
}

// refresh reads ?refresh=N: a page an installer leaves open while phones
// boot reloads itself (a meta refresh: no JavaScript). Out-of-range values
// turn it off rather than fail the page.
func refresh(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("refresh"))
	if err != nil || n < minRefresh || n > maxRefresh {
		return 0
	}
	return n
}

const (
	minRefresh     = 2
	maxRefresh     = 3600
	defaultRefresh = 10
)

const maxQuery = 200

func parseFilter(r *http.Request) (filter, error) { return filterFrom(r.URL.Query(), refresh(r)) }

// filterFrom reads a filter from a query or a form.
func filterFrom(q url.Values, refresh int) (filter, error) {
	f := filter{Q: strings.TrimSpace(q.Get("q")), Site: strings.TrimSpace(q.Get("site")), Refresh: refresh}
	if len(f.Q) > maxQuery {
		f.Q = f.Q[:maxQuery]
	}
	if len(f.Site) > maxQuery {
		f.Site = f.Site[:maxQuery]
	}
	if s := strings.TrimSpace(q.Get("state")); s != "" && s != "all" {
		st, err := inventory.ParseState(s)
		if err != nil {
			return f, err
		}
		f.State = st
	}
	return f, nil
}

// describe names the phones the filter selects, for an action's results.
func (f filter) describe() string {
	s := "every phone"
	if f.State != "" {
		s += " in state " + string(f.State)
	}
	if f.Site != "" {
		s += " at site " + f.Site
	}
	if f.Q != "" {
		s += " matching " + strconv.Quote(f.Q)
	}
	return s
}

// match applies the filter. q matches, ignoring case, a part of the MAC in
// any spelling (A11FA7, a1:1f:a7), the model, firmware, IP, hostname or the
// failure reason.
func (f filter) match(p inventory.Phone, st inventory.State, reason string) bool {
	if f.State != "" && st != f.State {
		return false
	}
	if f.Site != "" && p.Site != f.Site {
		return false
	}
	if f.Q == "" {
		return true
	}
	q := strings.ToLower(f.Q)
	if macDigits := strings.NewReplacer(":", "", "-", "", ".", "").Replace(q); macDigits != "" &&
		strings.Contains(strings.ToLower(p.MAC.String()), macDigits) {
		return true
	}
	for _, s := range []string{p.Model, p.Firmware, p.IP, p.Hostname, reason} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return false
}

// hint says what to do about a phone in state st. The reason says what
// went wrong; the hint where to look.
func hint(p inventory.Phone, st inventory.State) string {
	switch st {
	case inventory.StateStale:
		return "Not seen for a while: it may be unplugged, on another subnet, or provisioned by another server."
	case inventory.StateFirmwareLoop:
		return "The phone keeps downloading the same image without coming up on it: check that the image is for its model and not damaged; clearing the loop guard (status page) gives it the image again."
	case inventory.StateFailed:
	default:
		return ""
	}
	e, ok := failedEvent(p)
	if !ok {
		return ""
	}
	switch e.Step {
	case inventory.StepDHCP:
		if e.Kind == inventory.KindDecline {
			return "The phone declined the offered address because another device already uses it: find that device or shrink [dhcp] pool."
		}
		return "The DHCP exchange failed: check that the pool is not exhausted and that no other DHCP server answers (snomprov doctor names them)."
	case inventory.StepPnP:
		switch e.Kind {
		case inventory.KindIgnored:
			return "snomprov saw the PnP SUBSCRIBE and did not answer it, as [pnp] answer tells it to: set answer = \"snom\" (or \"all\"), or add the phone to [[phones]] for answer = \"configured\"."
		case inventory.KindNotifyRejected:
			return "The phone refused the PnP NOTIFY: it may already be provisioned from elsewhere or have PnP turned off; a factory reset starts it over."
		case inventory.KindNotifyFailed:
			return "snomprov could not send the PnP answer: check the interface in [pnp] interfaces and the server log."
		}
		return "The PnP NOTIFY was not acknowledged: a firewall on the phone's path may drop it, or the phone took another responder's URL (snomprov doctor lists every responder)."
	case inventory.StepGeneral, inventory.StepPhone, inventory.StepFirmwareFile:
		if e.Kind == inventory.HTTPKind(http.StatusUnauthorized) {
			return "The phone sent no or wrong HTTP credentials: phones provisioned by DHCP or PnP know none, so leave [http] username/password empty or give them in the setting URL."
		}
		return "The phone asked for a settings file snomprov could not serve: check [[phones]] and [models] and http.unknown_phones in the config; `snomprov render MAC` shows what it would get."
	case inventory.StepFirmwareImage:
		return "The firmware image could not be served: check that the file named in [models.<type>] firmware exists in http.firmware_dir."
	}
	return ""
}

// failedEvent is the most recent failure that made the phone failed, read
// the same way inventory.Phone.State does.
func failedEvent(p inventory.Phone) (inventory.Event, bool) {
	for i := len(p.Events) - 1; i >= 0; i-- {
		e := p.Events[i]
		switch e.Step {
		case inventory.StepDHCP, inventory.StepPnP, inventory.StepGeneral, inventory.StepPhone,
			inventory.StepFirmwareFile, inventory.StepFirmwareImage:
			return e, !e.OK
		}
	}
	return inventory.Event{}, false
}

// ago renders a duration the way a person reads a "last seen" column.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// stepLabels are the names a person reads for each step.
var stepLabels = map[inventory.Step]string{
	inventory.StepDHCP:          "DHCP lease",
	inventory.StepPnP:           "PnP answer",
	inventory.StepGeneral:       "General file",
	inventory.StepPhone:         "Phone file",
	inventory.StepFirmwareFile:  "Firmware file",
	inventory.StepFirmwareImage: "Firmware image",
	inventory.StepFile:          "Other files",
	inventory.StepBootstrap:     "Bootstrap to HTTPS",
	inventory.StepAction:        "Action",
}

func stepLabel(s inventory.Step) string {
	if l, ok := stepLabels[s]; ok {
		return l
	}
	return string(s)
}

// The preview is masked by its provider; this second pass makes sure that
// a provider bug cannot put a SIP password on a page. It hides the text of
// any XML element whose name has a secret-looking part (user_pass,
// http_pass, admin_mode_password, ...) and the password in URL userinfo.
var (
	xmlElementRE = regexp.MustCompile(`<([A-Za-z][A-Za-z0-9_\-]*)((?:\s[^<>]*)?)>([^<]*)</([A-Za-z][A-Za-z0-9_\-]*)\s*>`)
	userinfoRE   = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s"'<>]+):([^@\s"'<>/]+)@`)
	secretParts  = map[string]bool{"pass": true, "passwd": true, "password": true, "pwd": true,
		"secret": true, "pin": true, "token": true, "hash": true}
)

func secretName(name string) bool {
	for _, part := range strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '_' || r == '-' }) {
		if secretParts[part] {
			return true
		}
	}
	return false
}

func maskSecrets(body string) string {
	body = xmlElementRE.ReplaceAllStringFunc(body, func(m string) string {
		sub := xmlElementRE.FindStringSubmatch(m)
		if sub[1] != sub[4] || !secretName(sub[1]) || sub[3] == "" || sub[3] == redact.Mask {
			return m
		}
		return "<" + sub[1] + sub[2] + ">" + redact.Mask + "</" + sub[4] + ">"
	})
	return userinfoRE.ReplaceAllString(body, "${1}:"+redact.Mask+"@")
}

// maxPreview bounds one previewed file on the page.
const maxPreview = 256 << 10

type previewFile struct {
	Path      string
	Body      string
	Truncated bool
	Binary    bool
	Size      int
}

func previewFiles(files []File) []previewFile {
	out := make([]previewFile, 0, len(files))
	for _, f := range files {
		pf := previewFile{Path: f.Path, Size: len(f.Body)}
		body := f.Body
		if len(body) > maxPreview {
			body, pf.Truncated = body[:maxPreview], true
		}
		if !utf8.Valid(body) && !pf.Truncated {
			pf.Binary = true
		} else {
			pf.Body = maskSecrets(strings.ToValidUTF8(string(body), "\uFFFD"))
		}
		out = append(out, pf)
	}
	return out
}

// url builds the list page's URL for f with this state and refresh.
func (f filter) url(state inventory.State, refresh int) string {
	v := url.Values{}
	if state != "" {
		v.Set("state", string(state))
	}
	if f.Q != "" {
		v.Set("q", f.Q)
	}
	if f.Site != "" {
		v.Set("site", f.Site)
	}
	if refresh > 0 {
		v.Set("refresh", strconv.Itoa(refresh))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// phoneURL links to a phone's page with the colon spelling of its MAC. On
// the HTTP listener a last path segment of twelve bare hex digits is a phone
// file name to the phone router, so the compact form may never reach this
// handler; the colon form always does. Every spelling is served.
func phoneURL(m phone.MAC) string { return "/phones/" + m.Colon() }
