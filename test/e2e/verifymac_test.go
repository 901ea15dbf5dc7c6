package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
)

// TestHTTPVerifyMAC: on a namespace LAN, the phone gets its own file; a
// laptop asking for the same file by MAC gets a 404 with verify_mac =
// enforce, and the file plus one warning with log (after a SIGHUP).
func TestHTTPVerifyMAC(t *testing.T) {
	needTool(t, "curl")
	bin := binary(t)
	l := lantest.New(t, "10.77.9.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.9.1/24"})
	phone := l.AddHost("phone", lantest.HostOptions{Addr: "10.77.9.23/24", MAC: "00:04:13:a1:1f:a7"})
	laptop := l.AddHost("laptop", lantest.HostOptions{Addr: "10.77.9.66/24", MAC: "02:00:00:00:00:66"})
	state := t.TempDir()
	body := func(mode string) string {
		return `[server]
interface = "eth0"
advertise = "10.77.9.1"
state_dir = "` + state + `"
[http]
listen = "10.77.9.1:8080"
https_listen = ""
cleartext_models = ["snomD785"]
verify_mac = "` + mode + `"
[pnp]
enabled = false
[[phones]]
mac = "00:04:13:A1:1F:A7"
model = "snomD785"
[phones.settings]
user_pass = { 1 = "verify-mac-secret" }
`
	}
	cfg := writeConfig(t, body("enforce"))
	p := srv.Start(bin, "serve", "-config", cfg)
	if err := p.WaitOutput("msg=ready", 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	const url = "http://10.77.9.1:8080/snomD785-000413A11FA7.htm"
	fetch := func(h *lantest.Host) (code, body string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := h.Run(ctx, "curl", "-s", "-w", "\n%{http_code}", url)
		if err != nil {
			t.Fatalf("curl from %s: %v\n%s", h.Name, err, out)
		}
		i := strings.LastIndexByte(out, '\n')
		return out[i+1:], out[:i]
	}

	if code, b := fetch(phone); code != "200" || !strings.Contains(b, "verify-mac-secret") {
		t.Errorf("the phone itself: %s %q", code, b)
	}
	if code, b := fetch(laptop); code != "404" || strings.Contains(b, "verify-mac-secret") {
		t.Errorf("the laptop with enforce: %s %q", code, b)
	}
	if !strings.Contains(p.Output(), "http.verify_mac = enforce: 10.77.9.66 has MAC 020000000066 on the LAN, not 000413A11FA7") {
		t.Errorf("the refusal is not logged with its reason:\n%s", p.Output())
	}

	if err := os.WriteFile(cfg, []byte(body("log")), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(unix.SIGHUP)
	if err := p.WaitOutput("configuration reloaded", 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	for i := 0; i < 2; i++ {
		if code, b := fetch(laptop); code != "200" || !strings.Contains(b, "verify-mac-secret") {
			t.Errorf("the laptop with log: %s %q", code, b)
		}
	}
	if n := strings.Count(p.Output(), "fetched by a device with another MAC"); n != 1 {
		t.Errorf("%d warnings for two fetches by the laptop, want 1:\n%s", n, p.Output())
	}
	if strings.Contains(p.Output(), "device_mac=000413A11FA7") {
		t.Errorf("the phone's own fetch was reported:\n%s", p.Output())
	}
}
