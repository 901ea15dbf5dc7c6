package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/httpd"
	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/metrics"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/pnp"
	"github.com/snomprov/snomprov/provision"
	"github.com/snomprov/snomprov/status"
)

// Version is shown on the status page and in metrics; cmd sets it.
var Version = "dev"

// servers is the set of running protocol servers and what they share.
type servers struct {
	log     *slog.Logger
	inv     phoneStore
	metrics *metrics.Recorder
	started time.Time
	// neighbors is the LAN interface's ARP table, for http.verify_mac.
	neighbors *netif.Neighbors

	http *httpd.Server
	pnp  *pnp.Server  // nil when [pnp] enabled = false
	dhcp *dhcp.Server // nil when [dhcp] enabled = false

	mu      sync.Mutex
	cfg     *config.Config
	catalog *provision.Catalog
	health  map[string]status.Component
	// healthChanged is called (outside mu) when a server turns unhealthy.
	healthChanged func()
}

type namedComponent struct {
	name string
	comp component
	// optional reports whether an error from Serve only disables this
	// server (DHCP refusing to run beside another DHCP server) instead of
	// stopping the appliance.
	optional func(error) bool
}

func buildServers(cfg *config.Config, netw network, inv phoneStore, log *slog.Logger) (*servers, error) {
	s := &servers{log: log, inv: inv, started: time.Now(), health: map[string]status.Component{},
		neighbors: netif.NewNeighbors(netw.iface)}
	s.metrics = metrics.NewRecorder(inv)
	reg := s.metrics.Registry()
	metrics.RegisterBuildInfo(reg, Version)
	metrics.RegisterStart(reg, s.started)
	metrics.RegisterPhones(reg, inv, s.staleAfter, nil)
	if b, ok := inv.(interface{ Stats() metrics.BufferStats }); ok {
		metrics.RegisterInventoryBuffer(reg, b.Stats)
	}

	hopts, catalog, err := s.httpOptions(cfg, netw)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	if s.http, err = httpd.New(hopts, log.With("server", "http"), s.metrics); err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("http: %w", err)}
	}
	if cfg.PnP.Enabled {
		if s.pnp, err = pnp.New(pnpOptions(cfg, netw), log.With("server", "pnp"), s.metrics); err != nil {
			return nil, &ConfigError{Err: fmt.Errorf("pnp: %w", err)}
		}
	}
	if cfg.DHCP.Enabled {
		dopts, err := dhcpOptions(cfg, netw)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		if s.dhcp, err = dhcp.New(dopts, log.With("server", "dhcp"), s.metrics); err != nil {
			return nil, &ConfigError{Err: fmt.Errorf("dhcp: %w", err)}
		}
		metrics.RegisterPool(reg, s.dhcp.PoolUsage)
	}
	s.cfg, s.catalog = cfg, catalog
	return s, nil
}

func (s *servers) components() []namedComponent {
	list := []namedComponent{{name: "http", comp: s.http}}
	if s.pnp != nil {
		list = append(list, namedComponent{name: "pnp", comp: s.pnp})
	}
	if s.dhcp != nil {
		list = append(list, namedComponent{name: "dhcp", comp: s.dhcp, optional: func(err error) bool {
			if !errors.Is(err, dhcp.ErrOtherServer) {
				return false
			}
			s.setHealth("dhcp", false, err.Error())
			return true
		}})
	}
	return list
}

func (s *servers) names() []string {
	var n []string
	for _, c := range s.components() {
		n = append(n, c.name)
		s.setHealth(c.name, true, "running")
	}
	return n
}

func (s *servers) setHealth(name string, ok bool, detail string) {
	s.mu.Lock()
	s.health[name] = status.Component{Name: name, OK: ok, Detail: detail}
	changed := s.healthChanged
	s.mu.Unlock()
	if !ok && changed != nil {
		changed()
	}
}

func (s *servers) healthList() []status.Component {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]status.Component, 0, len(s.health)+1)
	for _, c := range s.health {
		out = append(out, c)
	}
	if b, ok := s.inv.(interface{ Stats() metrics.BufferStats }); ok {
		out = append(out, inventoryHealth(b.Stats()))
	}
	slices.SortFunc(out, func(a, b status.Component) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

func (s *servers) staleAfter() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Status.StaleAfter.Duration
}

// reload builds every server's new options first and applies them only if
// all could be built, so the three servers never run on different configs.
func (s *servers) reload(cfg *config.Config, netw network) error {
	if err := restartOnly(s.cfg, cfg); err != nil {
		return err
	}
	hopts, catalog, err := s.httpOptions(cfg, netw)
	if err != nil {
		return err
	}
	var dopts dhcp.Options
	if s.dhcp != nil {
		if dopts, err = dhcpOptions(cfg, netw); err != nil {
			return err
		}
	}
	if err := s.http.Reload(hopts); err != nil {
		return fmt.Errorf("http: %w", err)
	}
	if s.pnp != nil {
		if err := s.pnp.Reload(pnpOptions(cfg, netw)); err != nil {
			return fmt.Errorf("pnp: %w", err)
		}
	}
	if s.dhcp != nil {
		if err := s.dhcp.Reload(dopts); err != nil {
			return fmt.Errorf("dhcp: %w", err)
		}
	}
	s.mu.Lock()
	s.cfg, s.catalog = cfg, catalog
	s.mu.Unlock()
	return nil
}

// restartOnly rejects changes that need new sockets; a reload never
// half-applies them.
func restartOnly(old, cfg *config.Config) error {
	var changed []string
	if old.HTTP.Listen != cfg.HTTP.Listen {
		changed = append(changed, "http.listen")
	}
	if old.HTTPS() != cfg.HTTPS() {
		changed = append(changed, "http.tls_cert/tls_key")
	}
	if old.PnP.Enabled != cfg.PnP.Enabled || !slices.Equal(old.PnP.Interfaces, cfg.PnP.Interfaces) {
		changed = append(changed, "pnp.enabled/interfaces")
	}
	if old.DHCP.Enabled != cfg.DHCP.Enabled {
		changed = append(changed, "dhcp.enabled")
	}
	if old.Server.Interface != cfg.Server.Interface || old.Server.StateDir != cfg.Server.StateDir {
		changed = append(changed, "server.interface/state_dir")
	}
	if old.Inventory != cfg.Inventory {
		changed = append(changed, "inventory.url/site")
	}
	if len(changed) > 0 {
		return fmt.Errorf("changing %v needs a restart (systemctl restart snomprov); nothing was reloaded", changed)
	}
	return nil
}

func (s *servers) httpOptions(cfg *config.Config, netw network) (httpd.Options, *provision.Catalog, error) {
	catalog, err := provision.New(cfg)
	if err != nil {
		return httpd.Options{}, nil, err
	}
	var pool func() (int, int, bool)
	if s.dhcp != nil || cfg.DHCP.Enabled {
		pool = func() (int, int, bool) {
			if s.dhcp == nil {
				return 0, 0, false
			}
			used, total := s.dhcp.PoolUsage()
			return used, total, true
		}
	}
	base := BaseURL(cfg, catalog, netw.advertise)
	page := status.New(status.Options{
		Inventory: s.inv,
		Preview: func(mac phone.MAC, model string) ([]status.File, error) {
			files, err := catalog.Files(mac, model, base, false)
			if err != nil {
				return nil, err
			}
			out := make([]status.File, len(files))
			for i, f := range files {
				out[i] = status.File(f)
			}
			return out, nil
		},
		PoolUsage:     pool,
		Health:        s.healthList,
		AdminUser:     cfg.Status.AdminUser,
		AdminPassword: cfg.Status.AdminPassword,
		StaleAfter:    cfg.Status.StaleAfter.Duration,
		Metrics:       s.metrics,
		Version:       Version,
	})
	return httpd.Options{
		Listen:        cfg.HTTP.Listen,
		URL:           cfg.HTTP.URL,
		FirmwareDir:   cfg.HTTP.FirmwareDir,
		FilesDir:      cfg.HTTP.FilesDir,
		UnknownPhones: cfg.HTTP.UnknownPhones,
		Username:      cfg.HTTP.Username,
		Password:      cfg.HTTP.Password,
		TLSCert:       cfg.HTTP.TLSCert,
		TLSKey:        cfg.HTTP.TLSKey,
		VerifyMAC:     cfg.HTTP.VerifyMAC,
		LANMAC: func(ip netip.Addr) (phone.MAC, bool) {
			// Only the interface's own subnet is in its ARP table; a
			// routed phone is not checked.
			if !netw.prefix.Contains(ip) {
				return phone.MAC{}, false
			}
			m, ok := s.neighbors.Lookup(ip)
			return phone.MAC(m), ok
		},
		Catalog: catalog,
		Extra:   http.Handler(page),
	}, catalog, nil
}

func pnpOptions(cfg *config.Config, netw network) pnp.Options {
	ifaces := cfg.PnP.Interfaces
	if len(ifaces) == 0 || (len(ifaces) == 1 && ifaces[0] == "") {
		ifaces = []string{netw.iface}
	}
	hint := `set [pnp] answer = "snom" in the config file to answer Snom phones`
	if cfg.Source == "" {
		hint = `running on the embedded defaults, so PnP only records phones. To answer them, run ` +
			`"snomprov serve -config /etc/snomprov/snomprov.toml" with [pnp] answer = "snom" (the default with a config file)`
	}
	return pnp.Options{
		Interfaces:     ifaces,
		Answer:         cfg.PnP.Answer,
		Configured:     func(m phone.MAC) bool { _, ok := cfg.Phone(m); return ok },
		URL:            cfg.SettingURL,
		RecordOnlyHint: hint,
	}
}

func dhcpOptions(cfg *config.Config, netw network) (dhcp.Options, error) {
	d := cfg.DHCP
	start, end, err := config.ParsePool(d.Pool)
	if err != nil {
		return dhcp.Options{}, fmt.Errorf("dhcp.pool: %w", err)
	}
	o := dhcp.Options{
		Interface:         netw.iface,
		ServerIP:          netw.prefix.Addr(),
		Subnet:            netw.prefix.Masked(),
		PoolStart:         start,
		PoolEnd:           end,
		Router:            d.Router,
		DNS:               d.DNS,
		NTP:               d.NTP,
		Domain:            d.Domain,
		LeaseTime:         d.LeaseTime.Duration,
		ConflictProbe:     d.ConflictProbe.Duration,
		Serve:             d.Serve,
		UpdateServer:      d.UpdateServer,
		UpdateFilename:    d.UpdateFilename,
		VendorOptions:     d.VendorOptions,
		VoiceVLAN:         d.VoiceVLAN,
		VoicePriority:     d.VoicePriority,
		AllowOtherServers: d.AllowOtherServers,
		StateDir:          cfg.Server.StateDir,
	}
	if cfg.IsSet("dhcp.time_offset") {
		off := d.TimeOffset.Duration
		o.TimeOffset = &off
	}
	if o.ConflictProbe == 0 {
		o.ConflictProbe = -1 // dhcp.Options: zero means its default, negative off
	}
	if o.UpdateServer == "" {
		o.UpdateServer = cfg.SettingURL(netw.advertise)
	}
	for _, r := range d.Reservations {
		o.Reservations = append(o.Reservations, dhcp.Reservation{MAC: r.MAC, IP: r.IP, Hostname: r.Hostname})
	}
	return o, nil
}

// BaseURL is the scheme://host[:port] written into files when no request is
// at hand (render, the status page preview): http.url's base when set, else
// the setting-server URL on the advertised address.
func BaseURL(cfg *config.Config, catalog *provision.Catalog, advertise netip.Addr) string {
	if b := catalog.FixedBase(); b != "" {
		return b
	}
	return strings.TrimSuffix(cfg.SettingURL(advertise), "/")
}
