package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
)

// TestQuickStartAsUser is the README's `make run`: `snomprov serve` on the
// embedded defaults, as a normal user (nobody), starts, serves HTTP on
// 8080 and HTTPS on 8443 with the certificate it made in the user's state
// directory. It runs in a namespace host with a default route, as the
// embedded defaults pick the default route's interface.
func TestQuickStartAsUser(t *testing.T) {
	needTool(t, "setpriv")
	needTool(t, "curl")
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := srv.Run(ctx, "ip", "route", "add", "default", "via", "10.77.0.254", "dev", "eth0"); err != nil {
		t.Fatalf("default route: %v\n%s", err, out)
	}
	// A home nobody owns, reachable by nobody, with a copy of the binary.
	home, err := os.MkdirTemp("", "snomprov-quickstart")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	bin := filepath.Join(home, "snomprov")
	b, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{home, bin} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(home, 0o755)
	p := srv.Start("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME="+home, "XDG_STATE_HOME=", bin, "serve")
	if err := p.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("serve on the embedded defaults as nobody: %v\n%s", err, p.Output())
	}
	t.Cleanup(p.Stop)
	if out, err := srv.Run(ctx, "curl", "-sf", "-o", "/dev/null", "-w", "%{http_code}", "http://10.77.0.1:8080/snomD785.htm"); err != nil || out != "200" {
		t.Errorf("HTTP on 8080: %q %v", out, err)
	}
	ca := filepath.Join(home, ".local", "state", "snomprov", "tls", "ca.crt")
	if out, err := srv.Run(ctx, "curl", "-sf", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", "https://10.77.0.1:8443/snomD785.htm"); err != nil || out != "200" {
		t.Errorf("HTTPS on 8443, trusting %s: %q %v\n%s", ca, out, err, p.Output())
	}
	if !strings.Contains(p.Output(), "addr=[::]:8443 tls=true") {
		t.Errorf("no HTTPS listener in the log:\n%s", p.Output())
	}
}
