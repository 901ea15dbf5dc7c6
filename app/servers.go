package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/httpd"
	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/inventory/pgstore"
	"github.com/snomprov/snomprov/metrics"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/pnp"
	"github.com/snomprov/snomprov/resync"
	"github.com/snomprov/snomprov/rollout"
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

	// netw is where the appliance sits; a reload never changes it.
	netw plan.LAN
	// page is the status page, API and metrics, reloaded with each plan.
	page *status.Handler

	mu     sync.Mutex
	plan   *plan.Plan // being served
	health map[string]status.Component
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

// newServers is newWiring and attach at once, for a known inventory.
func newServers(netw plan.LAN, inv phoneStore, log *slog.Logger) *servers {
	s := newWiring(netw, log)
	s.attach(inv)
	return s
}

// newWiring makes what every plan's servers are wired to (the status page,
// the ARP table): enough to compile. attach adds the inventory the plan
// names, and build the servers.
func newWiring(netw plan.LAN, log *slog.Logger) *servers {
	return &servers{log: log, started: time.Now(), health: map[string]status.Component{},
		neighbors: netif.NewNeighbors(netw.Interface), netw: netw, page: status.New(status.Options{})}
}

// attach adds the inventory and the metrics counted on its way.
func (s *servers) attach(inv phoneStore) {
	s.inv = inv
	s.metrics = metrics.NewRecorder(inv)
	reg := s.metrics.Registry()
	metrics.RegisterBuildInfo(reg, Version)
	metrics.RegisterStart(reg, s.started)
	metrics.RegisterPhones(reg, inv, s.staleAfter, nil)
	if b, ok := inv.(interface{ Stats() metrics.BufferStats }); ok {
		metrics.RegisterInventoryBuffer(reg, b.Stats)
	}
}

// runtime is what the servers of every plan are wired to; it stays the
// same across reloads.
func (s *servers) runtime() plan.Runtime {
	return plan.Runtime{
		Extra: s.page,
		LANMAC: func(ip netip.Addr) (phone.MAC, bool) {
			// Only the interface's own subnet is in its ARP table; a
			// routed phone is not checked.
			if !s.netw.Prefix.Contains(ip) {
				return phone.MAC{}, false
			}
			m, ok := s.neighbors.Lookup(ip)
			return phone.MAC(m), ok
		},
		Firmware:        rollout.NewGate(attachedLocal{s}, s.sharedInventory, nil),
		InterfaceExists: plan.InterfaceExists,
		Interfaces:      plan.Interfaces,
		MakeCert:        true,
	}
}

func (s *servers) compile(cfg *config.Config) (*plan.Plan, error) {
	return plan.Compile(cfg, s.netw, s.runtime())
}

// build makes every server of p. Nothing here checks the configuration
// again: the compile did.
func (s *servers) build(p *plan.Plan) error {
	s.http = p.HTTP.NewServer(s.log.With("server", "http"), s.metrics)
	var err error
	if p.PnP != nil {
		if s.pnp, err = p.PnP.NewServer(s.log.With("server", "pnp"), s.metrics); err != nil {
			return fmt.Errorf("pnp: %w", err)
		}
		metrics.RegisterPnPShed(s.metrics.Registry(), s.pnp.Shed)
	}
	if p.DHCP != nil {
		if s.dhcp, err = p.DHCP.NewServer(s.log.With("server", "dhcp"), s.metrics); err != nil {
			return fmt.Errorf("dhcp: %w", err)
		}
		d := s.dhcp
		metrics.RegisterPool(s.metrics.Registry(), func() []metrics.PoolUsage {
			subs := d.SubnetUsage()
			out := make([]metrics.PoolUsage, len(subs))
			for i, u := range subs {
				out[i] = metrics.PoolUsage{Subnet: u.Subnet.String(), Used: u.Used, Size: u.Size}
			}
			return out
		})
		metrics.RegisterDHCPNoSubnet(s.metrics.Registry(), s.dhcp.NoSubnet)
		metrics.RegisterDHCPNotServed(s.metrics.Registry(), s.dhcp.NotServed)
	}
	s.mu.Lock()
	s.plan = p
	s.mu.Unlock()
	s.page.Reload(s.statusOptions(p))
	return nil
}

// attached is the inventory the servers were attached to, read when the
// rollout gate or the status page asks (the plan is compiled before the
// inventory opens).
type attached struct{ s *servers }

func (a attached) Phone(m phone.MAC) (inventory.Phone, bool) {
	if a.s.inv == nil {
		return inventory.Phone{}, false
	}
	return a.s.inv.Phone(m)
}

// attachedLocal is the part of it a phone's request may wait for: all of
// the file store, only this appliance's records of a shared inventory.
type attachedLocal struct{ s *servers }

func (a attachedLocal) Phone(m phone.MAC) (inventory.Phone, bool) {
	if pg, ok := a.s.inv.(*pgstore.Store); ok {
		return pg.Local().Phone(m)
	}
	return attached(a).Phone(m)
}

// sharedInventory is the shared inventory when there is one, for the
// rollout gate to read off the request path; nil with the file store.
func (s *servers) sharedInventory() rollout.Phones {
	if pg, ok := s.inv.(*pgstore.Store); ok {
		return pg
	}
	return nil
}

func (s *servers) statusOptions(p *plan.Plan) status.Options {
	cfg, catalog, base := p.Config, p.Catalog, p.BaseURL
	var pool func() ([]status.Pool, bool)
	if d := s.dhcp; d != nil {
		pool = func() ([]status.Pool, bool) {
			subs := d.SubnetUsage()
			out := make([]status.Pool, len(subs))
			for i, u := range subs {
				out[i] = status.Pool{Subnet: u.Subnet.String(), LAN: u.LAN, Used: u.Used, Total: u.Size}
			}
			return out, true
		}
	}
	return status.Options{
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
		Rollouts:      s.rollouts(catalog.Rollouts()),
		Metrics:       s.metrics,
		Version:       Version,
		// The actions' events take the servers' way into the inventory,
		// so the metrics count them too.
		Recorder: s.metrics,
		Resync: func(ctx context.Context, o resync.Options) (resync.Report, error) {
			return resync.Run(ctx, o, io.Discard)
		},
		Site: cfg.Inventory.Site,
		Log:  s.log.With("component", "status"),
	}
}

// rollouts reports where each staged rollout of a plan stands, from the
// inventory; nil when the plan has none.
func (s *servers) rollouts(rs []rollout.Rollout) func() []rollout.Status {
	if len(rs) == 0 {
		return nil
	}
	return func() []rollout.Status { return rollout.Statuses(rs, attached{s}, time.Now()) }
}

// runInventory flushes the inventory until ctx ends. The status page's
// running actions are stopped first, so the final flush has the result of
// every phone they were asked for.
func (s *servers) runInventory(ctx context.Context) error {
	flushCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
			s.page.Close()
			stop()
		case <-flushCtx.Done():
		}
	}()
	return s.inv.Run(flushCtx)
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
	if s.plan == nil {
		return 0
	}
	return s.plan.Config.Status.StaleAfter.Duration
}

// pnpAnswer is the answer policy in force: the compiled one (the file's,
// or pnp's default), else what the file says.
func (s *servers) pnpAnswer(cfg *config.Config) string {
	if p := s.current(); p != nil && p.PnP != nil {
		return p.PnP.Options().Answer
	}
	return cfg.PnP.Answer
}

// current is the plan being served.
func (s *servers) current() *plan.Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plan
}

// restartNeeded asks the appliance and every running server whether next
// needs what only a start sets up (new sockets, another interface).
func (s *servers) restartNeeded(next *plan.Plan) error {
	errs := []error{plan.RestartNeeded(s.current(), next), s.http.RestartNeeded(next.HTTP)}
	if s.pnp != nil && next.PnP != nil {
		errs = append(errs, s.pnp.RestartNeeded(next.PnP))
	}
	if s.dhcp != nil && next.DHCP != nil {
		errs = append(errs, s.dhcp.RestartNeeded(next.DHCP))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; nothing was reloaded", err)
	}
	return nil
}

// reload compiles cfg into a whole new plan and, only if that succeeds
// and needs no new sockets, swaps it into every server, the status page
// and the plan the systemd status reads, with steps that cannot fail. On
// any error nothing has changed.
func (s *servers) reload(cfg *config.Config) (*plan.Plan, error) {
	next, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.restartNeeded(next); err != nil {
		next.Close()
		return nil, err
	}
	s.http.Apply(next.HTTP)
	if s.pnp != nil {
		s.pnp.Apply(next.PnP)
	}
	if s.dhcp != nil {
		s.dhcp.Apply(next.DHCP)
	}
	s.page.Reload(s.statusOptions(next))
	s.mu.Lock()
	s.plan = next
	s.mu.Unlock()
	return next, nil
}
