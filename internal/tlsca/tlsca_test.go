package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var lan = Names{DNS: []string{"prov.lan"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}

// verify checks the pair on disk as a phone trusting only the CA would.
func verify(t *testing.T, p Pair, ip string, now time.Time) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.CAPEM) {
		t.Fatal("CA PEM does not parse")
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, DNSName: ip}); err != nil {
		t.Fatalf("server certificate does not verify for %s: %v", ip, err)
	}
	return pair.Leaf
}

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

	// First start: a CA and a server certificate for the names.
	first, err := Ensure(dir, lan, now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CACreated || !first.Issued {
		t.Fatalf("first start: CA created %v, issued %v", first.CACreated, first.Issued)
	}
	leaf := verify(t, first, "10.0.0.2", now)
	verify(t, first, "prov.lan", now)
	if fi, err := os.Stat(filepath.Join(dir, caKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(first.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server key mode: %v %v", fi.Mode(), err)
	}

	// Restart: the same CA and the same certificate.
	again, err := Ensure(dir, lan, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.CACreated || again.Issued || string(again.CAPEM) != string(first.CAPEM) {
		t.Errorf("restart replaced something: CA created %v, issued %v", again.CACreated, again.Issued)
	}
	if l := verify(t, again, "10.0.0.2", now); l.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Error("restart issued a new server certificate")
	}

	// Renewal: inside RenewBefore of the expiry, a new certificate from
	// the same CA.
	late := leaf.NotAfter.Add(-RenewBefore + time.Hour)
	renewed, err := Ensure(dir, lan, late)
	if err != nil {
		t.Fatal(err)
	}
	if !renewed.Issued || renewed.CACreated || string(renewed.CAPEM) != string(first.CAPEM) {
		t.Fatalf("renewal: issued %v, CA created %v", renewed.Issued, renewed.CACreated)
	}
	if l := verify(t, renewed, "10.0.0.2", late); !l.NotAfter.After(leaf.NotAfter) {
		t.Errorf("renewed certificate expires %v, the old one %v", l.NotAfter, leaf.NotAfter)
	}

	// A new LAN address: issued again, covering it.
	moved := Names{DNS: lan.DNS, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("192.168.1.5")}}
	m, err := Ensure(dir, moved, late)
	if err != nil || !m.Issued {
		t.Fatalf("new address: issued %v, %v", m.Issued, err)
	}
	verify(t, m, "192.168.1.5", late)
}

// TestBrokenCA: a CA that cannot be read is an error that says what to do,
// never silently replaced (phones were handed it).
func TestBrokenCA(t *testing.T) {
	now := time.Now()
	for name, breakIt := range map[string]func(dir string){
		"key missing": func(dir string) { os.Remove(filepath.Join(dir, caKey)) },
		"key garbage": func(dir string) { os.WriteFile(filepath.Join(dir, caKey), []byte("not a key"), 0o600) },
		"cert garbage": func(dir string) {
			os.WriteFile(filepath.Join(dir, CAFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Ensure(dir, lan, now); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, CAFile))
			breakIt(dir)
			after, _ := os.ReadFile(filepath.Join(dir, CAFile))
			_, err := Ensure(dir, lan, now)
			if err == nil || !strings.Contains(err.Error(), "new CA") {
				t.Fatalf("Ensure with a broken CA: %v", err)
			}
			if now, _ := os.ReadFile(filepath.Join(dir, CAFile)); string(now) != string(after) || (name == "key missing" && string(now) != string(before)) {
				t.Error("the CA certificate was replaced")
			}
		})
	}
}

// TestBrokenServerCert: a server certificate that does not load is issued
// again from the CA.
func TestBrokenServerCert(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := Ensure(dir, lan, now); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600)
	p, err := Ensure(dir, lan, now)
	if err != nil || !p.Issued {
		t.Fatalf("issued %v, %v", p.Issued, err)
	}
	verify(t, p, "10.0.0.2", now)
}
