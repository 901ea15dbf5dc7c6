package browser

// The status page's actions in headless Chromium against the real binary:
// the installer logs in (answering the Basic-auth prompt), ticks a phone,
// presses Resync, and a sipp UAS standing in for the phone receives the
// check-sync NOTIFY and answers 200; the results page and the phone's
// timeline then say so. A form without its token, and a form on another
// site's page, are refused with 403 and send nothing.
//
// Everything runs on loopback: the appliance on 127.0.0.1 (PnP and DHCP
// off), the phone (its HTTP fetch and sipp) on a 127.x.y.z address of its
// own, and Chromium resolves no name at all.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/snomprov/snomprov/internal/servetest"
)

const (
	actionsUser = "admin"
	actionsPass = "browser-actions-pw"
	actionsMAC  = "000413A17001"
)

const actionsCfg = `
[server]
interface = "lo"
advertise = "127.0.0.1"
state_dir = "%[1]s/state"

[http]
listen = "127.0.0.1:%[2]d"
https_listen = ""
firmware_dir = "%[1]s/fw"

[pnp]
enabled = false

[status]
admin_password = "` + actionsPass + `"

[[phones]]
mac = "00:04:13:a1:70:01"
model = "snomD785"
`

// phoneAddr picks a loopback address for the phone, away from 127.0.0.1
// and from other test runs.
func phoneAddr() string {
	return fmt.Sprintf("127.%d.%d.%d", 70+rand.IntN(50), rand.IntN(256), 2+rand.IntN(250))
}

// fetchSettings is the phone asking for its settings from its own
// address, as a booting Snom does: the inventory then knows its IP.
func fetchSettings(t *testing.T, base, ip string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	req, _ := http.NewRequest(http.MethodGet, base+"/snomD785-"+actionsMAC+".htm", nil)
	req.Header.Set("User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 "+actionsMAC+" SXM:0 UXM:0)")
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("the phone's settings fetch: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("the phone's settings fetch: %s", res.Status)
	}
}

// uas is a sipp UAS answering check-sync NOTIFYs on ip:5060
// (test/sipp/checksync_uas.xml), at most calls of them.
type uas struct {
	cmd      *exec.Cmd
	done     chan error
	msgFile  string
	logFile  string
	out      strings.Builder
	finished atomic.Bool
}

func startUAS(t *testing.T, ip string, calls int) *uas {
	t.Helper()
	dir := t.TempDir()
	u := &uas{done: make(chan error, 1), msgFile: filepath.Join(dir, "messages.log"), logFile: filepath.Join(dir, "sipp.log")}
	u.cmd = exec.Command(servetest.NeedTool(t, "sipp"), "-sf", filepath.Join(servetest.Root(), "test", "sipp", "checksync_uas.xml"),
		"-t", "u1", "-i", ip, "-p", "5060", "-m", fmt.Sprint(calls), "-nostdin",
		"-trace_msg", "-message_file", u.msgFile, "-trace_logs", "-log_file", u.logFile, "-timeout", "60", "-timeout_error")
	u.cmd.Stdout, u.cmd.Stderr = &u.out, &u.out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.done <- u.cmd.Wait(); u.finished.Store(true) }()
	t.Cleanup(func() {
		if !u.finished.Load() {
			u.cmd.Process.Signal(syscall.SIGKILL) // by its PID
			<-u.done
		}
	})
	// sipp holds the port once a bind of our own fails.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: 5060})
		if err != nil && errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		if c != nil {
			c.Close()
		}
		if u.finished.Load() || time.Now().After(deadline) {
			t.Fatalf("sipp did not listen on %s:5060:\n%s", ip, u.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return u
}

// notifies counts the NOTIFYs sipp has received so far.
func (u *uas) notifies() int {
	b, _ := os.ReadFile(u.msgFile)
	return strings.Count(string(b), "NOTIFY sip:")
}

// wait waits for sipp to finish its calls and fails the test unless its
// scenario passed.
func (u *uas) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-u.done:
		u.done <- err
		if err != nil {
			log, _ := os.ReadFile(u.logFile)
			t.Fatalf("sipp scenario failed (%v):\n%s\n%s", err, u.out.String(), log)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sipp did not finish its call")
	}
}

// login answers the page's Basic-auth prompts with the admin credentials,
// as the installer types them; it returns how many prompts came.
func login(t *testing.T, ctx context.Context, user, pass string) *atomic.Int32 {
	t.Helper()
	tab := chromedp.FromContext(ctx).Target
	paused := cdp.Events(ctx, tab, fetch.RequestPaused)
	prompts := cdp.Events(ctx, tab, fetch.AuthRequired)
	var asked atomic.Int32
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range prompts {
			if err != nil {
				return
			}
			asked.Add(1)
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: pass}})
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		t.Fatalf("enabling the login handler: %v", err)
	}
	return &asked
}

func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

func TestBrowserActions(t *testing.T) {
	servetest.NeedTool(t, "sipp")
	ctx := browser(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "fw"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := servetest.FreePort(t)
	cfg := filepath.Join(dir, "snomprov.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(actionsCfg, dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := servetest.Serve(t, cfg)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ip := phoneAddr()
	fetchSettings(t, base, ip)
	asked := login(t, ctx, actionsUser, actionsPass)

	// Log in, tick the phone, press Resync.
	u := startUAS(t, ip, 1)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#pick-"+actionsMAC))); err != nil {
		t.Fatalf("list page: %v\n%s", err, srv.Logs)
	}
	if asked.Load() == 0 {
		t.Error("the page did not ask for the admin password")
	}
	saveScreenshot(t, ctx, "actions-list.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#pick-"+actionsMAC))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#resync-selected"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#run-done"))); err != nil {
		t.Fatalf("results page: %v\n%s", err, srv.Logs)
	}
	saveScreenshot(t, ctx, "actions-result.png")
	u.wait(t)
	if log, _ := os.ReadFile(u.logFile); !strings.Contains(string(log), "CHECKSYNC-OK reboot=false") {
		t.Errorf("sipp log lacks the check-sync NOTIFY:\n%s", log)
	}
	if n := u.notifies(); n != 1 {
		t.Errorf("sipp got %d NOTIFYs, want 1", n)
	}
	if s := pageText(t, ctx, "#run-done"); s != "Done: 1 ok, 0 failed, of 1." {
		t.Errorf("results say %q", s)
	}
	row := pageText(t, ctx, "#result-"+actionsMAC)
	for _, want := range []string{actionsMAC, ip, "ok", "Resync by admin from the status page: accepted, 200 OK from " + ip + ":5060"} {
		if !strings.Contains(row, want) {
			t.Errorf("result row %q lacks %q", row, want)
		}
	}

	// The phone's timeline shows it, newest first.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#result-"+actionsMAC+" a"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#timeline"))); err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, ctx, "actions-timeline.png")
	if first := pageText(t, ctx, "#timeline tbody tr:first-child"); !strings.Contains(first, "Action RESYNC ok Resync by admin from the status page: accepted, 200 OK") {
		t.Errorf("timeline's newest event reads %q", first)
	}

	// A form without its token: 403, a message, and no NOTIFY.
	u2 := startUAS(t, ip, 1)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#actions input[name="token"]').remove(), true`)); err != nil {
		t.Fatal(err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#resync")))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Errorf("without the token: %d, want 403", resp.Status)
	}
	if body := pageText(t, ctx, "body"); !strings.Contains(body, "no action token") || !strings.Contains(body, "Nothing was done") {
		t.Errorf("the refusal reads %q", body)
	}

	// A form on another site's page, even with a valid token: 403.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/phones/00:04:13:a1:70:01"), chromedp.WaitVisible(chromedp.CSS("#resync"))); err != nil {
		t.Fatal(err)
	}
	token, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#actions input[name="token"]').value`))
	if err != nil || token == "" {
		t.Fatalf("token: %q %v", token, err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><form method="post" action="%s/actions"><input type="hidden" name="token" value="%s">`+
			`<input type="hidden" name="mac" value="%s"><button id="go" name="action" value="reboot">win a prize</button></form>`, base, token, actionsMAC)
	}))
	t.Cleanup(evil.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("#go"))); err != nil {
		t.Fatal(err)
	}
	resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#go")))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Errorf("from another site: %d, want 403", resp.Status)
	}
	if body := pageText(t, ctx, "body"); !strings.Contains(body, "another site") {
		t.Errorf("the refusal reads %q", body)
	}
	saveScreenshot(t, ctx, "actions-refused.png")

	// Neither refusal sent anything: sipp, still waiting for its one call,
	// has seen no NOTIFY, and the timeline has no second action.
	if n := u2.notifies(); n != 0 || u2.finished.Load() {
		t.Errorf("after the refusals sipp got %d NOTIFYs (finished %v)", n, u2.finished.Load())
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/phones/00:04:13:a1:70:01"), chromedp.WaitVisible(chromedp.CSS("#timeline"))); err != nil {
		t.Fatal(err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll('#timeline tbody tr')).filter(r => r.innerText.includes('Action')).length`)); err != nil || n != 1 {
		t.Errorf("%d actions in the timeline (%v), want the one resync", n, err)
	}
}
