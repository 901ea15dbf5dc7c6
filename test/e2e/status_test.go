package e2e

// The installer's view end to end: the real binary on 127.0.0.1 (PnP and
// DHCP off, so nothing leaves the machine) serves phone files to Go's HTTP
// client with Snom User-Agents; the status page, JSON API and /metrics must
// then show exactly those requests.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	statusKnownMAC   = "000413A11FA7" // in [[phones]]
	statusUnknownMAC = "000413B00002" // not in the config: its per-MAC file is a 404
	statusSecret     = "status-e2e-sip-secret"
	statusCfg        = `
[server]
interface = "lo"
advertise = "127.0.0.1"
state_dir = "%[1]s/state"

[http]
listen = "127.0.0.1:%[2]d"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "%[1]s/fw"
unknown_phones = "deny"

[pnp]
enabled = false

[status]
stale_after = "1h"
%[3]s

[[phones]]
mac = "00:04:13:a1:1f:a7"
model = "snomD785"
[phones.settings]
user_name = { 1 = "401" }
user_pass = { 1 = "` + statusSecret + `" }
`
)

func snomUA(model, mac string) string {
	return fmt.Sprintf("Mozilla/4.0 (compatible; %s-SIP 10.1.33.33 2010.12-00004-g9ba52f5 %s SXM:0 UXM:0)", model, mac)
}

type statusEnv struct {
	base string
	user string
	pass string
}

func startStatusEnv(t *testing.T, statusSection string) statusEnv {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := filepath.Join(dir, "snomprov.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(statusCfg, dir, port, statusSection)), 0o644); err != nil {
		t.Fatal(err)
	}
	startServe(t, cfg)
	return statusEnv{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

// fetch does one GET and returns status and body.
func (e statusEnv) fetch(t *testing.T, path, ua string, auth bool) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	if auth {
		req.SetBasicAuth(e.user, e.pass)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res.StatusCode, res.Header, string(b)
}

// phoneRequests are what the phones do before the installer looks.
func (e statusEnv) phoneRequests(t *testing.T) {
	t.Helper()
	steps := []struct {
		path, ua string
		code     int
	}{
		{"/snomD785.htm", snomUA("snomD785", statusKnownMAC), 200},
		{"/snomD785-" + statusKnownMAC + ".htm", snomUA("snomD785", statusKnownMAC), 200},
		{"/snomD735-" + statusUnknownMAC + ".htm", snomUA("snomD735", statusUnknownMAC), 404},
		// Old firmware: no MAC in the User-Agent, so unknown_phones = deny
		// refuses it. Counted in metrics, not in the inventory.
		{"/snomD785.htm", "Mozilla/4.0 (compatible; snomD785-SIP 8.4.18 1.1.3-s)", 404},
	}
	for _, s := range steps {
		code, _, body := e.fetch(t, s.path, s.ua, false)
		if code != s.code {
			t.Fatalf("phone GET %s: %d, want %d: %s", s.path, code, s.code, body)
		}
		if strings.Contains(body, statusSecret) && s.code == 200 && !strings.Contains(s.path, statusKnownMAC) {
			t.Errorf("%s carries the SIP secret", s.path)
		}
	}
}

type apiPhone struct {
	MAC      string `json:"mac"`
	Model    string `json:"model"`
	Firmware string `json:"firmware"`
	IP       string `json:"ip"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Steps    map[string]struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"steps"`
	Events []struct {
		Step string `json:"step"`
		Kind string `json:"kind"`
		OK   bool   `json:"ok"`
	} `json:"events"`
}

// metricValue reads one sample of the exposition, labels in written order.
func metricValue(t testing.TB, text, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("metrics lack %s", series)
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Errorf("%s: %v", series, err)
	}
	return v
}

func TestStatusReflectsPhoneRequests(t *testing.T) {
	e := startStatusEnv(t, "")
	e.phoneRequests(t)

	// The list.
	code, hdr, body := e.fetch(t, "/api/phones", "", false)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/api/phones: %d %q: %s", code, hdr.Get("Content-Type"), body)
	}
	var list []apiPhone
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("/api/phones is not a JSON array of phones: %v\n%s", err, body)
	}
	byMAC := map[string]apiPhone{}
	for _, p := range list {
		byMAC[p.MAC] = p
	}
	if len(list) != 2 {
		t.Errorf("%d phones, want 2 (the MAC-less request is not a phone): %s", len(list), body)
	}
	known, unknown := byMAC[statusKnownMAC], byMAC[statusUnknownMAC]
	if known.State != "up-to-date" || known.Model != "snomD785" || known.Firmware != "10.1.33.33" || known.IP != "127.0.0.1" {
		t.Errorf("known phone: %+v", known)
	}
	if unknown.State != "failed" || !strings.HasPrefix(unknown.Reason, "phone: ") || unknown.Model != "snomD735" {
		t.Errorf("unknown phone: %+v", unknown)
	}
	if strings.Contains(body, statusSecret) {
		t.Error("/api/phones shows the SIP secret")
	}

	// Filters.
	_, _, body = e.fetch(t, "/api/phones?state=failed", "", false)
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 1 || list[0].MAC != statusUnknownMAC {
		t.Errorf("?state=failed: %v %s", err, body)
	}

	// One phone, in any MAC spelling.
	code, _, body = e.fetch(t, "/api/phones/00:04:13:a1:1f:a7", "", false)
	var one apiPhone
	if err := json.Unmarshal([]byte(body), &one); err != nil || code != 200 {
		t.Fatalf("/api/phones/{mac}: %d %v: %s", code, err, body)
	}
	if !one.Steps["general"].OK || !one.Steps["phone"].OK || len(one.Events) != 2 ||
		one.Events[0].Step != "general" || one.Events[0].Kind != "200" || one.Events[1].Step != "phone" {
		t.Errorf("known phone's timeline: %+v", one)
	}
	t.Run("compact MAC in the path", func(t *testing.T) {
		code, _, body := e.fetch(t, "/api/phones/"+statusKnownMAC, "", false)
		if err := json.Unmarshal([]byte(body), &one); err != nil || code != 200 || one.MAC != statusKnownMAC {
			t.Errorf("/api/phones/%s: %d %v: %s", statusKnownMAC, code, err, body)
		}
		code, _, body = e.fetch(t, "/api/phones/000413FFFFFF", "", false)
		if code != 404 || !strings.Contains(body, "has not been seen") {
			t.Errorf("unknown MAC: %d %s", code, body)
		}
		code, _, body = e.fetch(t, "/phones/"+statusKnownMAC, "", false)
		if code != 200 || !strings.Contains(body, "What this phone gets") || !strings.Contains(body, "/snomD785-"+statusKnownMAC+".htm") {
			t.Errorf("phone page: %d", code)
		}
		if strings.Contains(body, statusSecret) {
			t.Error("phone page preview shows the SIP secret")
		}
		if !strings.Contains(body, "********") {
			t.Error("phone page preview shows no masked secret")
		}
	})

	// Metrics count every request, the MAC-less one too.
	code, hdr, body = e.fetch(t, "/metrics", "", false)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %q", code, hdr.Get("Content-Type"))
	}
	t.Run("MAC-less request counted", func(t *testing.T) {
		series := `snomprov_http_requests_total{kind="general",status="404"}`
		if got := metricValue(t, body, series); got != 1 {
			t.Errorf("%s = %v, want 1", series, got)
		}
	})
	for series, want := range map[string]float64{
		`snomprov_http_requests_total{kind="general",status="200"}`: 1,
		`snomprov_http_requests_total{kind="phone",status="200"}`:   1,
		`snomprov_http_requests_total{kind="phone",status="404"}`:   1,
		`snomprov_phones{state="failed"}`:                           1,
		`snomprov_phones{state="up-to-date"}`:                       1,
		`snomprov_phones{state="settings-fetched"}`:                 0,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, help := range []string{"# TYPE snomprov_http_requests_total counter", "# TYPE snomprov_phones gauge", "# HELP snomprov_build_info "} {
		if !strings.Contains(body, help) {
			t.Errorf("metrics lack %q", help)
		}
	}

	// The page a person opens.
	code, hdr, body = e.fetch(t, "/", "", false)
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %d %q", code, hdr.Get("Content-Type"))
	}
	for _, s := range []string{statusKnownMAC, statusUnknownMAC, "up-to-date", ">failed<", "snomD735"} {
		if !strings.Contains(body, s) {
			t.Errorf("status page lacks %q", s)
		}
	}
	// The page's link to a phone works on the shared listener and shows
	// what the phone gets, secrets masked.
	m := regexp.MustCompile(`<a href="(/phones/[^"]+)"[^>]*>` + statusKnownMAC + `</a>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("status page has no link to %s", statusKnownMAC)
	}
	code, _, body = e.fetch(t, m[1], "", false)
	if code != 200 || !strings.Contains(body, "What this phone gets") || !strings.Contains(body, "/snomD785-"+statusKnownMAC+".htm") ||
		!strings.Contains(body, "Phone file") {
		t.Errorf("phone page %s: %d", m[1], code)
	}
	if strings.Contains(body, statusSecret) {
		t.Error("phone page preview shows the SIP secret")
	}
	if !strings.Contains(body, "********") {
		t.Error("phone page preview shows no masked secret")
	}
}

func TestStatusAdminPassword(t *testing.T) {
	e := startStatusEnv(t, `admin_user = "installer"
admin_password = "e2e-admin-pw"`)
	e.user, e.pass = "installer", "e2e-admin-pw"

	// Phones are never behind the admin password.
	e.phoneRequests(t)

	for _, path := range []string{"/", "/api/phones", "/api/phones/00:04:13:a1:1f:a7", "/phones/00:04:13:a1:1f:a7", "/phones/000413A11FA7", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			code, hdr, body := e.fetch(t, path, "", false)
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("without credentials: %d %q", code, hdr.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, statusKnownMAC) {
				t.Error("leaks inventory data without credentials")
			}
			wrong := e
			wrong.pass = "nope"
			if code, _, _ := wrong.fetch(t, path, "", true); code != http.StatusUnauthorized {
				t.Errorf("with a wrong password: %d", code)
			}
			if code, _, _ := e.fetch(t, path, "", true); code != http.StatusOK {
				t.Errorf("with credentials: %d", code)
			}
		})
	}
	_, _, body := e.fetch(t, "/api/phones", "", true)
	if !strings.Contains(body, statusKnownMAC) || !strings.Contains(body, statusUnknownMAC) {
		t.Errorf("/api/phones with credentials lacks the phones: %s", body)
	}
}
