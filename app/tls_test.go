package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/syncbuf"
	"github.com/snomprov/snomprov/internal/tlsca"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/plan"
)

// TestRenewOnce: the generated certificate is made at start and issued
// again by the running appliance once it is due, the new pair loaded.
func TestRenewOnce(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "snomprov.toml"), []byte(fmt.Sprintf(`
[server]
interface = "lo"
state_dir = %q
[http]
listen = "127.0.0.1:18081"
https_listen = "127.0.0.1:18443"
[pnp]
enabled = false
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	netw := plan.LAN{Interface: "lo", Prefix: netip.MustParsePrefix("10.79.0.1/24"), Advertise: netip.MustParseAddr("10.79.0.1")}
	inv, _ := inventory.Open("", inventory.Options{})
	srv := newServers(netw, inv, quiet)
	p, err := srv.compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(plan.TLSDir(cfg), tlsca.CertFile)
	before, err := tls.LoadX509KeyPair(certFile, filepath.Join(plan.TLSDir(cfg), tlsca.KeyFile))
	if err != nil {
		t.Fatalf("no certificate made at start: %v", err)
	}
	logs := &syncbuf.Buffer{}
	a := &Appliance{cfg: cfg, net: netw, servers: srv, log: slog.New(slog.NewTextHandler(logs, nil))}
	a.renewOnce(time.Now()) // not due
	if strings.Contains(logs.String(), "renewed") {
		t.Fatalf("renewed a fresh certificate:\n%s", logs)
	}
	a.renewOnce(before.Leaf.NotAfter.Add(-24 * time.Hour))
	after, err := tls.LoadX509KeyPair(certFile, filepath.Join(plan.TLSDir(cfg), tlsca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if after.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) == 0 || !strings.Contains(logs.String(), "HTTPS certificate renewed") {
		t.Errorf("not renewed when due:\n%s", logs)
	}
}
