package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/httpd"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/internal/tlsca"
	"github.com/snomprov/snomprov/provision"
)

// TLSDir is where the appliance keeps its own CA and server certificate.
func TLSDir(cfg *config.Config) string { return filepath.Join(cfg.Server.StateDir, "tls") }

// tlsNames are what the generated server certificate covers: the machine's
// host name and the addresses phones reach it on.
func tlsNames(netw network) tlsca.Names {
	var n tlsca.Names
	if h, err := os.Hostname(); err == nil && h != "" {
		n.DNS = append(n.DNS, h)
	}
	for _, a := range []netip.Addr{netw.advertise, netw.prefix.Addr()} {
		if a.IsValid() && !a.IsUnspecified() && (len(n.IPs) == 0 || n.IPs[0] != a) {
			n.IPs = append(n.IPs, a)
		}
	}
	return n
}

// withTLS fills o's HTTPS certificate: the configured tls_cert/tls_key, or
// the pair in state_dir/tls, made or renewed now if needed.
func withTLS(o *httpd.Options, cfg *config.Config, netw network) error {
	if o.HTTPSListen == "" || o.TLSCert != "" {
		return nil
	}
	p, err := tlsca.Ensure(TLSDir(cfg), tlsNames(netw), time.Now())
	if err != nil {
		return fmt.Errorf("http.https_listen: the appliance's own certificate: %w", err)
	}
	o.TLSCert, o.TLSKey = p.CertFile, p.KeyFile
	return nil
}

// httpdOptions is [http] as the HTTP server's options (without the
// runtime parts: LAN lookups, catalog, status page, certificate files).
func httpdOptions(cfg *config.Config) httpd.Options {
	h := cfg.HTTP
	return httpd.Options{
		Listen:          h.Listen,
		HTTPSListen:     h.HTTPSListen,
		URL:             h.URL,
		FirmwareDir:     h.FirmwareDir,
		FilesDir:        h.FilesDir,
		UnknownPhones:   h.UnknownPhones,
		Username:        h.Username,
		Password:        h.Password,
		TLSCert:         h.TLSCert,
		TLSKey:          h.TLSKey,
		VerifyMAC:       h.VerifyMAC,
		CleartextModels: h.CleartextModels,
		CleartextPhones: h.CleartextPhones,
		ClientCert:      h.ClientCert,
		ClientCA:        h.ClientCA,
		TrustedProxies:  h.TrustedProxies,
		AllowedNetworks: h.AllowedNetworks,
	}
}

// CheckHTTP applies the HTTP server's rules to cfg as `serve` would, for
// `snomprov check`, without writing to state_dir: when the appliance's
// own certificate does not exist yet, a throw-away one stands in. It
// returns the warnings (the cleartext exceptions, for one).
func CheckHTTP(cfg *config.Config, catalog *provision.Catalog) ([]*field.Error, error) {
	o := httpdOptions(cfg)
	o.Catalog = catalog
	if o.HTTPSListen != "" && o.TLSCert == "" {
		dir := TLSDir(cfg)
		o.TLSCert, o.TLSKey = filepath.Join(dir, tlsca.CertFile), filepath.Join(dir, tlsca.KeyFile)
		if _, err := os.Stat(o.TLSCert); err != nil {
			// Not made yet (serve makes it): check the rest with a
			// throw-away pair.
			tmp, err := os.MkdirTemp("", "snomprov-check-tls")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(tmp)
			p, err := tlsca.Ensure(tmp, tlsca.Names{DNS: []string{"check"}}, time.Now())
			if err != nil {
				return nil, err
			}
			o.TLSCert, o.TLSKey = p.CertFile, p.KeyFile
		}
	}
	p, err := httpd.Prepare(o)
	if err != nil {
		return nil, err
	}
	p.Close()
	return p.Warnings, nil
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

// renewEvery is how often a running appliance looks at its generated
// certificate's expiry.
const renewEvery = 24 * time.Hour

// renewTLS keeps the generated HTTPS certificate from expiring while the
// appliance runs: once a day it asks tlsca for a current pair, and a newly
// issued one is loaded into the running HTTP server.
func (a *Appliance) renewTLS(ctx context.Context) error {
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			a.renewOnce(now)
		}
	}
}

func (a *Appliance) renewOnce(now time.Time) {
	a.mu.Lock()
	cfg, netw, srv := a.cfg, a.net, a.servers.http
	a.mu.Unlock()
	if srv == nil || !cfg.HTTPS() || cfg.HTTP.TLSCert != "" {
		return
	}
	p, err := tlsca.Ensure(TLSDir(cfg), tlsNames(netw), now)
	if err != nil {
		a.log.Error("renewing the HTTPS certificate", "err", err)
		return
	}
	if !p.Issued {
		return
	}
	if err := srv.LoadCertificate(p.CertFile, p.KeyFile); err != nil {
		a.log.Error("loading the renewed HTTPS certificate", "err", err)
		return
	}
	a.log.Info("HTTPS certificate renewed", "not_after", p.NotAfter.Format(time.RFC3339))
}
