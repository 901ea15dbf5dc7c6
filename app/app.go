// Package app is the appliance: it turns one Config into the HTTP, PnP and
// DHCP servers, runs them under one errgroup with a shared context, and
// handles readiness, reload and shutdown. Like pixiecore's Server, it is the
// only place that knows about all three; cmd/snomprov only parses flags.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/plan"
)

// component is what every protocol server provides (see the server contract
// in docs/architecture.md).
type component interface {
	Bind(ctx context.Context) error
	Serve(ctx context.Context) error
}

// ShutdownTimeout bounds a graceful stop: in-flight HTTP requests finish and
// leases and the inventory are flushed within it. A variable for tests.
var ShutdownTimeout = 10 * time.Second

// Appliance runs snomprov.
type Appliance struct {
	log *slog.Logger
	// Load re-reads the configuration on SIGHUP; nil disables reload
	// (the embedded defaults have no file to re-read).
	load func() (*config.Config, error)

	mu      sync.Mutex // guards cfg and the servers' options during reload
	cfg     *config.Config
	net     plan.LAN
	inv     phoneStore
	servers *servers
	// reloadErr is the last refused reload, shown in the systemd status
	// line until a reload succeeds.
	reloadErr string
}

// New prepares an appliance for cfg. load is called on SIGHUP.
func New(cfg *config.Config, load func() (*config.Config, error), log *slog.Logger) *Appliance {
	return &Appliance{cfg: cfg, load: load, log: log}
}

// Run starts everything and blocks until ctx is cancelled (or a signal asks
// to stop) or a server fails. A nil return means a clean, requested stop.
func (a *Appliance) Run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	netw, err := waitForNetwork(ctx, a.cfg, a.log)
	if err != nil {
		return err
	}
	a.net = netw

	// The default firmware directory lives in the state directory; make it,
	// so a first start has a place to drop images instead of a warning.
	if rel, err := filepath.Rel(a.cfg.Server.StateDir, a.cfg.HTTP.FirmwareDir); err == nil && !strings.HasPrefix(rel, "..") {
		if err := os.MkdirAll(a.cfg.HTTP.FirmwareDir, 0o750); err != nil {
			a.log.Warn("cannot create the firmware directory", "dir", a.cfg.HTTP.FirmwareDir, "err", err)
		}
	}
	// The compile comes first: it says which inventory to open. Only the
	// servers' wiring (status page, ARP table) is needed for it.
	srv := newWiring(netw, a.log)
	var p *plan.Plan
	WithLoadGC(func() { p, err = srv.compile(a.cfg) })
	if err != nil {
		return &ConfigError{Err: err}
	}
	inv, err := openInventory(p, a.log)
	if err != nil {
		p.Close()
		return err
	}
	a.inv = inv
	srv.attach(inv)
	for _, w := range p.Warnings {
		a.log.Warn("configuration", "warning", w.Error())
	}
	if err := srv.build(p); err != nil {
		p.Close()
		return err
	}
	a.servers = srv
	srv.healthChanged = func() { notify(a.log, "STATUS="+a.statusLine(time.Now())) }

	err = runServers(ctx, srv.components(), a.log, func() {
		a.announce()
		names := srv.names()
		notify(a.log, daemon.SdNotifyReady+"\nSTATUS="+a.statusLine(time.Now()))
		a.log.Info("ready", "servers", names)
	}, srv.runInventory, a.reloadOnHUP, a.renewTLS,
		func(ctx context.Context) error { watchdog(ctx, a.log); return nil },
		func(ctx context.Context) error { a.statusUpdates(ctx); return nil })
	notify(a.log, daemon.SdNotifyStopping)
	if err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// runServers binds every component, calls ready once all are bound, then
// serves them and the background tasks under one errgroup until ctx ends
// or one of them fails. A bind failure releases what was bound already.
func runServers(ctx context.Context, comps []namedComponent, log *slog.Logger, ready func(), background ...func(context.Context) error) error {
	// Bind every listener before declaring readiness, so "ready" means
	// phones can be served and a taken port fails the start, not later.
	for i, c := range comps {
		if err := c.comp.Bind(ctx); err != nil {
			release(comps[:i])
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, task := range background {
		g.Go(func() error { return task(gctx) })
	}
	for _, c := range comps {
		g.Go(func() error {
			// By the server contract, Serve returns nil only once gctx is
			// done; a server that stops on its own says why.
			err := c.comp.Serve(gctx)
			if err != nil && gctx.Err() == nil {
				if c.optional != nil && c.optional(err) {
					log.Warn(c.name+" disabled", "reason", err)
					return nil
				}
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	ready()
	return waitBounded(gctx, g, log)
}

// release closes the sockets of bound components: by the server contract,
// Serve with an ended context cleans up and returns.
func release(comps []namedComponent) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range comps {
		_ = c.comp.Serve(ctx)
	}
}

// reloadOnHUP re-reads the config on SIGHUP and applies it to all servers at
// once, or to none: an invalid file keeps the running config.
func (a *Appliance) reloadOnHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			notify(a.log, daemon.SdNotifyReloading)
			err := a.Reload()
			if err != nil {
				a.log.Error("reload failed; still serving the previous configuration", "err", err)
			} else {
				a.log.Info("configuration reloaded")
			}
			a.mu.Lock()
			a.reloadErr = ""
			if err != nil {
				a.reloadErr = oneLine(err.Error(), 200)
			}
			a.mu.Unlock()
			notify(a.log, daemon.SdNotifyReady+"\nSTATUS="+a.statusLine(time.Now()))
		}
	}
}

// Reload loads the configuration again and swaps it into every server.
func (a *Appliance) Reload() error {
	if a.load == nil {
		return errors.New("running on the embedded defaults: there is no file to reload (start with -config FILE)")
	}
	var err error
	WithLoadGC(func() { err = a.reload() })
	return err
}

func (a *Appliance) reload() error {
	cfg, err := a.load()
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := a.servers.reload(cfg)
	if err != nil {
		return err
	}
	for _, w := range p.Warnings {
		a.log.Warn("configuration", "warning", w.Error())
	}
	a.cfg = cfg
	return nil
}

// ConfigError marks errors caused by the configuration (exit code 2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Debug("sd_notify failed", "state", state, "err", err)
	}
}

// watchdog pings systemd at half the WatchdogSec interval when it asks for it.
func watchdog(ctx context.Context, log *slog.Logger) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			notify(log, daemon.SdNotifyWatchdog)
		}
	}
}

// waitBounded waits for the group; once a stop was requested (or a server
// failed) it gives the rest ShutdownTimeout to finish.
func waitBounded(gctx context.Context, g *errgroup.Group, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-gctx.Done():
	}
	log.Info("stopping", "timeout", ShutdownTimeout)
	select {
	case err := <-done:
		return err
	case <-time.After(ShutdownTimeout):
		return fmt.Errorf("servers did not stop within %s", ShutdownTimeout)
	}
}

// announce prints, once everything is bound, where phones and people find
// the appliance and what each server will do, in plain words.
func (a *Appliance) announce() {
	cfg, n := a.cfg, a.net
	url := redact.URL(cfg.SettingURL(n.Advertise))
	plain := *cfg
	plain.HTTP.URL, plain.HTTP.Username = "", ""
	statusPage := plain.SettingURL(n.Advertise)
	if cfg.HTTPS() {
		statusPage = plan.HTTPSURL(cfg, n.Advertise) // plain HTTP redirects there
	}
	a.log.Info("HTTP server listening", "listen", cfg.HTTP.Listen, "https_listen", cfg.HTTP.HTTPSListen, "setting_server_url", url, "status_page", statusPage)
	if cfg.HTTPS() {
		tlsFrom := cfg.HTTP.TLSCert
		if tlsFrom == "" {
			tlsFrom = plan.TLSDir(cfg)
		}
		a.log.Info("phones' own files (SIP passwords) are served only over HTTPS; plain HTTP gets the bootstrap that moves a phone there", "certificate", tlsFrom)
	}
	if cfg.Source == "" {
		a.log.Info("running on the embedded defaults (no -config FILE): DHCP off, PnP records phones but answers none")
	}
	if cfg.PnP.Enabled {
		a.log.Info("PnP responder", "group", "224.0.1.75:5060", "answer", a.servers.pnpAnswer(cfg))
	}
	if cfg.DHCP.Enabled {
		a.log.Info("DHCP server", "interface", n.Interface, "pool", dhcpPool(cfg), "option66", url)
	} else {
		a.log.Info("DHCP server off (enable with [dhcp] enabled = true)")
	}
}
