package doctor

import (
	"context"
	"crypto/tls"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/tlsca"
)

// TestCheckTLS: the certificate, its expiry and the CA are shown, and the
// bootstrap's target is checked with the CA phones are to trust.
func TestCheckTLS(t *testing.T) {
	p, err := tlsca.Ensure(t.TempDir(), tlsca.Names{IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	other, _ := tlsca.Ensure(t.TempDir(), tlsca.Names{}, time.Now())
	for _, tt := range []struct {
		name, ca string
		want     Level
	}{
		{"trusted", p.CAFile, Info},
		{"another CA", filepath.Join(other.Dir, tlsca.CAFile), Problem},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{}
			d := &doctor{o: Options{Timeout: 2 * time.Second, HTTPSURL: "https://" + ln.Addr().String() + "/", CertFile: p.CertFile, CAFile: tt.ca}, rep: rep}
			d.checkTLS(context.Background())
			var text []string
			last := Level("")
			for _, f := range rep.Findings {
				text = append(text, string(f.Level)+" "+f.Detail)
				last = f.Level
			}
			all := strings.Join(text, "\n")
			if !strings.Contains(all, "expires "+p.NotAfter.UTC().Format("2006-01-02")) || !strings.Contains(all, "127.0.0.1") {
				t.Errorf("certificate not shown:\n%s", all)
			}
			if last != tt.want {
				t.Errorf("last finding %s, want %s:\n%s", last, tt.want, all)
			}
		})
	}
}
