// Package browser drives the status page in headless Chromium. It is its
// own module (go.mod here) so chromedp and its dependencies stay out of
// the product's go.mod; `make test` runs it.
package browser

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/snomprov/snomprov/internal/statusfixture"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/status"
)

const failReason = statusfixture.FailReason

// fixtureOptions is the page status's own tests render (statusfixture).
func fixtureOptions(t *testing.T) status.Options {
	return status.Options{
		Inventory: statusfixture.Store(t),
		Preview: func(mac phone.MAC, model string) ([]status.File, error) {
			files, err := statusfixture.Preview(mac, model)
			out := make([]status.File, len(files))
			for i, f := range files {
				out[i] = status.File(f)
			}
			return out, err
		},
		PoolUsage: func() ([]status.Pool, bool) {
			pools, ok := statusfixture.Pools()
			out := make([]status.Pool, len(pools))
			for i, p := range pools {
				out[i] = status.Pool(p)
			}
			return out, ok
		},
		Health: func() []status.Component {
			return []status.Component{{Name: "http", OK: true, Detail: ":8080"}, {Name: "pnp", OK: false, Detail: "eth0: no multicast"}}
		},
		StaleAfter: statusfixture.StaleAfter,
		Metrics:    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics here\n") }),
		Version:    "test",
		Now:        func() time.Time { return statusfixture.Now },
	}
}

// browser starts headless Chromium with a fresh profile and returns a tab
// context. It skips when Chromium is missing, and fails under CI=true,
// where .ci/install-deps.sh installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed; .ci/install-deps.sh must install it")
		}
		t.Skip("chromium not installed; skipping the browser test (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("metrics-recording-only", true),
		// The page is on loopback; no name may resolve to anything else, so
		// the browser cannot reach beyond this machine whatever it tries.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("font-render-hinting", "none"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// The first Do starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(tcancel)
	return tctx
}

// saveScreenshot keeps a screenshot in the test's temp dir and, when
// SNOMPROV_SCREENSHOT_DIR is set, there too for a person to look at.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s: %d bytes, not a PNG", name, len(png))
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("SNOMPROV_SCREENSHOT_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// visibleRows returns the rendered text of each row of the phones table,
// as a person reads it (innerText honours CSS).
func visibleRows(t *testing.T, ctx context.Context) []string {
	t.Helper()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#phones tbody tr')).map(r => r.innerText.replace(/\s+/g, ' ').trim())`))
	if err != nil {
		t.Fatalf("reading rows: %v", err)
	}
	return rows
}

func rowWith(rows []string, mac string) string {
	for _, r := range rows {
		if strings.HasPrefix(r, mac) {
			return r
		}
	}
	return ""
}

func TestBrowserStatusPage(t *testing.T) {
	srv := httptest.NewServer(status.New(fixtureOptions(t))) // 127.0.0.1
	t.Cleanup(srv.Close)
	ctx := browser(t)

	// The whole list, as an installer first sees it.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#phones"))); err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, ctx, "status-list.png")
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title != "Phones · snomprov" {
		t.Errorf("title %q, %v", title, err)
	}
	rows := visibleRows(t, ctx)
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5: %q", len(rows), rows)
	}
	want := map[string][]string{
		"000413A11FA7": {"snomD785", "10.1.33.33", "10.77.0.101", "up-to-date", "8m ago"},
		"000413B00002": {"snomD735", "10.77.0.102", "failed", "phone: " + failReason, "snomprov render MAC", "4m ago"},
		"000413C00003": {"snomD120", "stale", "not seen since", "Not seen for a while", "3d ago"},
		"000413D00004": {"snomD717", "pnp-answered", "30s ago"},
		"000413E00005": {"snomD385", "seen", "2m ago"},
	}
	for mac, parts := range want {
		row := rowWith(rows, mac)
		if row == "" {
			t.Errorf("no visible row for %s in %q", mac, rows)
			continue
		}
		for _, p := range parts {
			if !strings.Contains(row, p) {
				t.Errorf("row %s reads %q; lacks %q", mac, row, p)
			}
		}
	}
	// The stylesheet loaded (same origin, allowed by the CSP): the failed
	// badge is red on pink, the up-to-date one green.
	colors, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
		getComputedStyle(document.querySelector('#phone-000413B00002 .badge')).color,
		getComputedStyle(document.querySelector('#phone-000413B00002 .badge')).backgroundColor,
		getComputedStyle(document.querySelector('#phone-000413A11FA7 .badge')).color]`))
	if err != nil {
		t.Fatal(err)
	}
	if colors[0] != "rgb(180, 35, 24)" || colors[1] != "rgb(253, 232, 230)" || colors[2] != "rgb(27, 127, 59)" {
		t.Errorf("badge colours %q: the stylesheet did not apply", colors)
	}
	summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".overview")))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"37 of 100 addresses in use (37%)", "FAIL pnp eth0: no multicast", "OK http", "failed 1", "all 5"} {
		if !strings.Contains(strings.Join(strings.Fields(summary), " "), s) {
			t.Errorf("summary %q lacks %q", summary, s)
		}
	}

	// Clicking the "failed" count shows only the failed phone.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("a.chip.st-failed"))); err != nil {
		t.Fatal(err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/?state=failed") {
		t.Errorf("after clicking failed: %s", loc)
	}
	rows = visibleRows(t, ctx)
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "000413B00002") || !strings.Contains(rows[0], failReason) {
		t.Errorf("failed filter shows %q", rows)
	}
	saveScreenshot(t, ctx, "status-failed.png")

	// The form works without JavaScript: pick "stale" and submit.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#phones")),
		chromedp.SetValue(chromedp.CSS(`select[name="state"]`), "stale")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`form.filter button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	rows = visibleRows(t, ctx)
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "000413C00003") {
		t.Errorf("stale filter shows %q", rows)
	}

	// A search typed into the box.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#phones")),
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), "D717")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`form.filter button[type="submit"]`))); err != nil {
		t.Fatal(err)
	}
	rows = visibleRows(t, ctx)
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "000413D00004") {
		t.Errorf("search D717 shows %q", rows)
	}

	// From the failed phone's row to its timeline and what it gets.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/?state=failed"), chromedp.WaitVisible(chromedp.CSS("#phones"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`#phone-000413B00002 td.mac a`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#timeline"))); err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, ctx, "status-phone.png")
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(body), " ")
	for _, s := range []string{
		"Phone 000413B00002 failed",
		"phone: " + failReason,
		"Phone file failed 4m ago " + failReason,
		"General file ok 4m ago /snomD735.htm",
		"PnP answer not yet never",
		"What this phone gets",
		"/snomD735-000413B00002.htm",
		"<user_pass idx=\"1\" perm=\"R\">********</user_pass>",
		"http://admin:********@10.77.0.1:8080/",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("phone page lacks %q", s)
		}
	}
	for _, s := range []string{"s3cr3t-sip", "hunter2"} {
		if strings.Contains(text, s) {
			t.Errorf("phone page shows the secret %q", s)
		}
	}
	events, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#timeline tbody tr')).map(r => r.innerText.replace(/\s+/g, ' ').trim())`))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || !strings.Contains(events[0], "Phone file 404 failed "+failReason) || !strings.Contains(events[2], "DHCP lease ACK ok") {
		t.Errorf("timeline reads %q", events)
	}
}
