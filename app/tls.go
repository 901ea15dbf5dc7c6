package app

import (
	"context"
	"time"

	"github.com/snomprov/snomprov/internal/tlsca"
	"github.com/snomprov/snomprov/plan"
)

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
	cfg, lan, srv := a.cfg, a.net, a.servers.http
	a.mu.Unlock()
	if srv == nil || !cfg.HTTPS() || cfg.HTTP.TLSCert != "" {
		return
	}
	p, err := tlsca.Ensure(plan.TLSDir(cfg), plan.CertNames(lan), now)
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
