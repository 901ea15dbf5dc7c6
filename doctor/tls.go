package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// checkTLS shows the HTTPS certificate and its expiry, and whether the
// bootstrap's target answers TLS with a certificate the phones' CA
// vouches for.
func (d *doctor) checkTLS(ctx context.Context) {
	if d.o.CertFile != "" {
		leaf, err := firstCert(d.o.CertFile)
		if err != nil {
			d.add("https", Problem, fmt.Sprintf("the HTTPS certificate %s: %v", d.o.CertFile, err), "give http.tls_cert a PEM certificate, or remove it to use the generated one")
		} else {
			left := time.Until(leaf.NotAfter)
			detail := fmt.Sprintf("HTTPS certificate %q for %s, expires %s (%d days), issued by %q", leaf.Subject.CommonName,
				certNames(leaf), leaf.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24), leaf.Issuer.CommonName)
			switch {
			case left <= 0:
				d.add("https", Problem, detail+": expired", "restart snomprov to renew the generated certificate, or renew http.tls_cert")
			case left < 30*24*time.Hour:
				d.add("https", Warning, detail, "a generated certificate is renewed at the next start; renew a configured http.tls_cert")
			default:
				d.add("https", Info, detail, "")
			}
		}
	}
	if d.o.CAFile != "" {
		if ca, err := firstCert(d.o.CAFile); err == nil {
			sum := sha256.Sum256(ca.Raw)
			d.add("https", Info, fmt.Sprintf("the CA phones are to trust is %s (%q, SHA-256 %X)", d.o.CAFile, ca.Subject.CommonName, sum[:8]), "")
		}
	}
	if d.o.HTTPSURL == "" {
		return
	}
	u, err := url.Parse(d.o.HTTPSURL)
	if err != nil || u.Host == "" {
		return
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	cfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if d.o.CAFile != "" {
		b, err := os.ReadFile(d.o.CAFile)
		if err == nil {
			cfg.RootCAs = x509.NewCertPool()
			cfg.RootCAs.AppendCertsFromPEM(b)
		}
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: d.o.Timeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	c, err := dialer.DialContext(ctx, "tcp", host)
	if err != nil {
		d.add("https", Problem, fmt.Sprintf("the bootstrap moves phones to %s, but TLS there failed: %v", d.o.HTTPSURL, err),
			"start snomprov with http.https_listen on; a certificate for another address is issued again at the next start")
		return
	}
	c.Close()
	d.add("https", Info, fmt.Sprintf("the bootstrap's target %s answers TLS with a certificate the CA vouches for", d.o.HTTPSURL), "")
}

func firstCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}
