package plan

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/tlsca"
)

// TLSDir is where the appliance keeps its own CA and server certificate.
func TLSDir(cfg *config.Config) string { return filepath.Join(cfg.Server.StateDir, "tls") }

// CertNames are what the generated server certificate covers: the
// machine's host name and the addresses phones reach the appliance on.
func CertNames(lan LAN) tlsca.Names {
	var n tlsca.Names
	if h, err := os.Hostname(); err == nil && h != "" {
		n.DNS = append(n.DNS, h)
	}
	for _, a := range []netip.Addr{lan.Advertise, lan.Prefix.Addr()} {
		if a.IsValid() && !a.IsUnspecified() && (len(n.IPs) == 0 || n.IPs[0] != a) {
			n.IPs = append(n.IPs, a)
		}
	}
	return n
}

// HTTPSURL is where the bootstrap moves phones when they reach the
// appliance on addr: https://addr[:port]/ on http.https_listen.
func HTTPSURL(cfg *config.Config, addr netip.Addr) string {
	_, port, err := net.SplitHostPort(cfg.HTTP.HTTPSListen)
	if err != nil {
		return ""
	}
	host := addr.String()
	if addr.Is6() {
		host = "[" + host + "]"
	}
	if port != "443" {
		host = net.JoinHostPort(addr.String(), port)
	}
	return "https://" + host + "/"
}

// certificate returns the HTTPS pair for a config without tls_cert: the
// appliance's own, in state_dir/tls. A running appliance (Runtime.MakeCert)
// makes or renews it now. check writes nothing: it uses the pair that is
// there, or, before serve's first start made one, a throw-away pair that
// cleanup removes once the HTTP server has loaded it.
func (c *compiler) certificate() (cert, key string, cleanup func(), err error) {
	dir := TLSDir(c.cfg)
	if c.rt.MakeCert {
		p, err := tlsca.Ensure(dir, CertNames(c.plan.LAN), time.Now())
		if err != nil {
			return "", "", nil, fmt.Errorf("the appliance's own certificate in %s: %w", dir, err)
		}
		return p.CertFile, p.KeyFile, func() {}, nil
	}
	cert, key = filepath.Join(dir, tlsca.CertFile), filepath.Join(dir, tlsca.KeyFile)
	if _, err := os.Stat(cert); err == nil {
		return cert, key, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "snomprov-check-tls")
	if err != nil {
		return "", "", nil, err
	}
	p, err := tlsca.Ensure(tmp, tlsca.Names{DNS: []string{"check"}}, time.Now())
	if err != nil {
		os.RemoveAll(tmp)
		return "", "", nil, err
	}
	return p.CertFile, p.KeyFile, func() { os.RemoveAll(tmp) }, nil
}
