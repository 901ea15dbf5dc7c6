// Package plan is the one compile step between the configuration file and
// the servers: Compile turns a decoded config.Config and the LAN it runs on
// into a Plan that holds, for each server, its prepared and checked options
// and the rendered settings catalog. `snomprov check`, the start of `serve`
// and every reload run this same function, so check says exactly what
// serve will do, and a reload that compiles is applied to every server
// with steps that cannot fail.
//
// Rules live in the servers' own Prepare functions (httpd, pnp, dhcp) and
// in the catalog (provision); this package only translates the config into
// their options, runs them all, and locates what they report in the file
// (FILE:LINE:COL: key: message). The checks that concern the whole
// appliance, across servers (a URL the phones are handed that they could
// not use), live here.
package plan

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/httpd"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory/pgstore"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/pnp"
	"github.com/snomprov/snomprov/provision"
)

// LAN is where the appliance sits: its interface, that interface's IPv4
// address and subnet, and the address phones reach it on. The zero LAN
// means "not known here" (check run on another machine): the checks that
// need it are skipped and listed in Plan.Skipped.
type LAN struct {
	Interface string
	Prefix    netip.Prefix // e.g. 10.0.0.2/24
	Advertise netip.Addr   // server.advertise, else Prefix's address
}

// Known reports whether the LAN's address and subnet are known.
func (l LAN) Known() bool { return l.Prefix.IsValid() }

// Runtime is what a running appliance wires into its servers; check
// compiles without it. Its values stay the same across reloads.
type Runtime struct {
	// Extra serves what the HTTP router does not claim: the status page,
	// the API and /metrics.
	Extra http.Handler
	// LANMAC answers the MAC of a LAN address from the ARP table, for
	// http.verify_mac.
	LANMAC func(netip.Addr) (phone.MAC, bool)
	// Firmware decides whether a phone gets its firmware image now (the
	// staged rollout, the loop guard), reading the inventory; nil: always.
	Firmware httpd.FirmwareGate
	// InterfaceExists reports whether a network interface exists on this
	// machine; nil: do not check (a LAN given by flags, not this machine's).
	InterfaceExists func(name string) bool
	// Interfaces lists this machine's interfaces with their IPv4 addresses,
	// for the local and relayed [[dhcp.subnets]]; nil: do not check (as
	// InterfaceExists).
	Interfaces func() (map[string][]netip.Prefix, error)
	// MakeCert lets the compile make or renew the appliance's own HTTPS
	// certificate in state_dir/tls; check leaves it false and writes nothing.
	MakeCert bool
}

// Plan is a compiled configuration.
type Plan struct {
	Config  *config.Config
	LAN     LAN
	Catalog *provision.Catalog
	// SettingURL is the URL PnP and DHCP hand to phones on LAN.Advertise.
	SettingURL string
	// BaseURL is scheme://host[:port] written into files when no request
	// is at hand (render, the status page preview).
	BaseURL string

	HTTP *httpd.Prepared
	PnP  *pnp.Prepared  // nil when [pnp] enabled = false
	DHCP *dhcp.Prepared // nil when [dhcp] enabled = false
	// Inventory is where phones and events are kept: the file store in
	// state_dir (URL empty) or the shared PostgreSQL one.
	Inventory pgstore.Options

	// Warnings are located problems that do not stop the appliance.
	Warnings config.Errors
	// Skipped names the checks that could not run for want of the LAN.
	Skipped []string
}

// Close releases what a plan that will not be served holds open (the HTTP
// server's directories).
func (p *Plan) Close() {
	if p != nil && p.HTTP != nil {
		p.HTTP.Close()
	}
}

// Compile checks cfg against lan and prepares every server. The error, if
// any, is config.Errors: every problem found, each located in the file.
// Compile releases cfg's key positions when done.
func Compile(cfg *config.Config, lan LAN, rt Runtime) (*Plan, error) {
	defer cfg.ReleasePositions()
	if !lan.Advertise.IsValid() {
		lan.Advertise = cfg.Server.Advertise
	}
	if !lan.Advertise.IsValid() && lan.Prefix.IsValid() {
		lan.Advertise = lan.Prefix.Addr()
	}
	p := &Plan{Config: cfg, LAN: lan}
	c := &compiler{cfg: cfg, plan: p, rt: rt}
	c.compile()
	warnings := cfg.LocateAll(c.warnings)
	if len(c.errs) > 0 {
		p.Close()
		var located config.Errors
		errors.As(cfg.Locate(c.errs), &located)
		return nil, &Problems{Errors: located, Warnings: warnings}
	}
	p.Warnings = warnings
	return p, nil
}

// Problems is Compile's error: every problem, located, and the warnings
// found on the way (check prints both). errors.As finds the config.Errors.
type Problems struct {
	Errors   config.Errors
	Warnings config.Errors
}

func (p *Problems) Error() string { return p.Errors.Error() }

// Unwrap lets errors.As reach the config.Errors.
func (p *Problems) Unwrap() error { return p.Errors }

// WarningsOf returns the warnings a failed compile found, if any.
func WarningsOf(err error) config.Errors {
	var p *Problems
	if errors.As(err, &p) {
		return p.Warnings
	}
	return nil
}

type compiler struct {
	cfg      *config.Config
	plan     *Plan
	rt       Runtime
	errs     field.Errors
	warnings field.Errors
	// urlBroken: http.url is wrong (reported); what derives from it is not
	// checked again.
	urlBroken bool
	// subnetAddrs are our addresses on the local [[dhcp.subnets]].
	subnetAddrs []netip.Addr
}

// under adds every field.Error in err to the compile's, their keys under
// section ("dhcp" + "pool" = "dhcp.pool"). It reports whether err was nil.
func (c *compiler) under(section string, err error) bool {
	if err == nil {
		return true
	}
	fes := field.List(err)
	if len(fes) == 0 {
		c.errs.Add(section, "%v", err)
		return false
	}
	for _, fe := range fes {
		c.errs.Add(field.Prefix(section, fe.Key), "%s", fe.Msg)
	}
	return false
}

func (c *compiler) warn(section string, fes []*field.Error) {
	for _, fe := range fes {
		c.warnings.Add(field.Prefix(section, fe.Key), "%s", fe.Msg)
	}
}

func (c *compiler) skipped(what string) { c.plan.Skipped = append(c.plan.Skipped, what) }

func (c *compiler) compile() {
	cfg, p := c.cfg, c.plan
	catalog, err := provision.New(cfg)
	var pe *provision.PrepareError
	switch {
	case errors.As(err, &pe):
		c.warn("", pe.Warnings)
	case catalog != nil:
		c.warn("", catalog.Warnings)
	}
	if !c.under("", err) {
		// Check the servers against a catalog of nothing but the server
		// settings, so one compile reports every problem; this plan is
		// never served.
		bare := &config.Config{Source: cfg.Source, Server: cfg.Server, HTTP: cfg.HTTP, Provision: cfg.Provision}
		for _, fe := range field.List(err) {
			if fe.Key == "http.url" {
				bare.HTTP.URL, c.urlBroken = "", true
			}
		}
		if catalog, err = provision.New(bare); err != nil {
			return
		}
	}
	p.Catalog = catalog
	p.SettingURL = cfg.SettingURL(p.LAN.Advertise)
	p.BaseURL = catalog.FixedBase()
	if p.BaseURL == "" {
		p.BaseURL = strings.TrimSuffix(p.SettingURL, "/")
	}
	c.server()
	c.http()
	if cfg.PnP.Enabled {
		c.pnp()
	}
	c.dhcp()
	c.handedURL()
	c.urlPort()
	c.inventory()
}

func (c *compiler) inventory() {
	o := inventoryOptions(c.cfg)
	if c.under("inventory", o.Validate()) {
		c.plan.Inventory = o
	}
}

func inventoryOptions(cfg *config.Config) pgstore.Options {
	return pgstore.Options{URL: cfg.Inventory.URL, Site: cfg.Inventory.Site, StateDir: cfg.Server.StateDir}
}

// Inventory is [inventory] checked as the compile checks it, for the
// commands that only read the inventory (snomprov phones).
func Inventory(cfg *config.Config) (pgstore.Options, error) {
	o := inventoryOptions(cfg)
	c := &compiler{cfg: cfg}
	if !c.under("inventory", o.Validate()) {
		return o, cfg.Locate(c.errs)
	}
	return o, nil
}

// urlPort: an http.url naming this appliance by address must name the
// port it listens on, or phones knock on a closed port. A URL by host
// name may be a proxy in front of it (docs/multisite.md): not ours to say.
func (c *compiler) urlPort() {
	raw := c.cfg.HTTP.URL
	if raw == "" || c.urlBroken {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || !c.ourAddress(u) {
		return
	}
	want := "80"
	if u.Scheme == "https" {
		want = "443"
	}
	if p := u.Port(); p != "" {
		want = p
	}
	if _, listen, err := net.SplitHostPort(c.cfg.HTTP.Listen); err == nil && listen != want && !(u.Scheme == "https" && c.cfg.HTTPS()) {
		c.errs.Add("http.url", "names this appliance on port %s, but http.listen is %q, so phones would find nothing there; write the URL with port %s, or listen on %s", want, c.cfg.HTTP.Listen, listen, want)
	}
}

func (c *compiler) server() {
	l := c.plan.LAN
	if c.rt.InterfaceExists == nil {
		c.skipped("that server.interface and pnp.interfaces exist (they are this machine's; give -interface on the machine itself)")
	} else if l.Interface != "" && !c.rt.InterfaceExists(l.Interface) {
		c.errs.Add("server.interface", "interface %q does not exist on this machine; use a name from `ip link`", l.Interface)
	}
	if !l.Known() {
		c.skipped("the DHCP pool, router and reservations against the LAN subnet (give -network ADDRESS/BITS)")
	}
}

func (c *compiler) http() {
	h := c.cfg.HTTP
	o := httpd.Options{
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
		LANMAC:          c.rt.LANMAC,
		Catalog:         c.plan.Catalog,
		Extra:           c.rt.Extra,
		Firmware:        c.rt.Firmware,
	}
	if o.HTTPSListen != "" && o.TLSCert == "" && o.TLSKey == "" {
		cert, key, cleanup, err := c.certificate()
		if err != nil {
			c.errs.Add("http.https_listen", "%v", err)
			return
		}
		defer cleanup()
		o.TLSCert, o.TLSKey = cert, key
	}
	prep, err := httpd.Prepare(o)
	if c.under("http", err) {
		c.plan.HTTP = prep
		for _, w := range prep.Warnings {
			// serve makes the default firmware directory in state_dir at start
			if w.Key == "firmware_dir" && !c.cfg.IsSet("http.firmware_dir") {
				continue
			}
			c.warn("http", []*field.Error{w})
		}
	}
}

func (c *compiler) pnp() {
	cfg := c.cfg
	ifaces := cfg.PnP.Interfaces
	if (len(ifaces) == 0 || (len(ifaces) == 1 && ifaces[0] == "")) && c.plan.LAN.Interface != "" {
		ifaces = []string{c.plan.LAN.Interface}
	}
	fileIfaces := len(ifaces)
	ifaces = c.pnpSubnetInterfaces(ifaces)
	hint := `set [pnp] answer = "snom" in the config file to answer Snom phones`
	if cfg.Source == "" {
		hint = `running on the embedded defaults, so PnP only records phones. To answer them, run ` +
			`"snomprov serve -config /etc/snomprov/snomprov.toml" with [pnp] answer = "snom" (the default with a config file)`
	}
	settingURL := cfg.SettingURL
	prep, err := pnp.Prepare(pnp.Options{
		Interfaces:     ifaces,
		Answer:         cfg.PnP.Answer,
		Configured:     func(m phone.MAC) bool { _, ok := cfg.Phone(m); return ok },
		URL:            settingURL,
		RecordOnlyHint: hint,
	})
	if !c.under("pnp", err) {
		return
	}
	c.plan.PnP = prep
	if c.rt.InterfaceExists != nil {
		for i, name := range ifaces[:fileIfaces] { // a subnet's own is checked with the subnet
			if name != "" && name != c.plan.LAN.Interface && !c.rt.InterfaceExists(name) {
				c.errs.Add(fmt.Sprintf("pnp.interfaces[%d]", i), "interface %q does not exist on this machine; use a name from `ip link`", name)
			}
		}
	}
	if prep.Options().Answer == pnp.AnswerConfigured && len(cfg.Phones) == 0 {
		c.warnings.Add("pnp.answer", `is "configured" but [[phones]] lists no phone, so no phone is answered`)
	}
}

func (c *compiler) dhcp() {
	cfg, lan := c.cfg, c.plan.LAN
	d := cfg.DHCP
	o := subnetOptions(d.DHCPSubnetOptions, func(k string) bool { return cfg.IsSet("dhcp." + k) })
	o.Interface, o.StateDir = lan.Interface, cfg.Server.StateDir
	o.ConflictProbe, o.Serve = d.ConflictProbe.Duration, d.Serve
	o.AllowOtherServers, o.Authoritative = d.AllowOtherServers, d.Authoritative
	if lan.Known() {
		o.ServerIP, o.Subnet = lan.Prefix.Addr(), lan.Prefix.Masked()
	}
	switch {
	case d.ConflictProbe.Duration == 0:
		o.ConflictProbe = -1 // "0s" in the file turns it off; dhcp's zero is its default
	case d.ConflictProbe.Duration < 0:
		c.errs.Add("dhcp.conflict_probe", `must be between "0s" (off) and "5s"; the default is "300ms"`)
	}
	if o.UpdateServer == "" && !c.urlBroken {
		o.UpdateServer = c.plan.SettingURL
	}
	if !d.Enabled {
		// A section that is off is still checked, so turning it on later
		// holds no surprise; only what it needs to run is not asked for.
		o.Interface, o.ServerIP, o.Subnet = "", netip.Addr{}, netip.Prefix{}
		o.Subnets = c.subnets(o, false)
		_, err := dhcp.Prepare(o)
		var kept field.Errors
		for _, fe := range field.List(err) {
			if fe.Key != "pool" || d.Pool != "" {
				kept = append(kept, fe)
			}
		}
		c.subnetErrors(kept.Err())
		return
	}
	o.Subnets = c.subnets(o, true)
	prep, err := dhcp.Prepare(o)
	if c.subnetErrors(err) {
		c.plan.DHCP = prep
	}
	if adv := cfg.Server.Advertise; prep != nil && adv.IsValid() && !lan.Known() {
		// Without the LAN the server address is still known from the file.
		po := prep.Options()
		if a := adv.Unmap(); po.PoolStart.IsValid() && !a.Less(po.PoolStart) && !po.PoolEnd.Less(a) {
			c.errs.Add("dhcp.pool", "the pool %v-%v contains this server's address %v (server.advertise); shrink the pool so it excludes it", po.PoolStart, po.PoolEnd, a)
		}
	}
	c.updateFilename()
}

// updateFilename: a phone joins option 66 and 67 into one URL; when that
// URL is this appliance's, this appliance must answer it. Each subnet's
// pair is checked where its update_filename is written.
func (c *compiler) updateFilename() {
	if c.plan.HTTP == nil {
		return
	}
	d := c.cfg.DHCP
	c.joinedURL("dhcp.update_filename", d.UpdateServer, d.UpdateFilename)
	for i, sn := range d.Subnets {
		at := fmt.Sprintf("dhcp.subnets[%d].", i)
		server, file := sn.UpdateServer, sn.UpdateFilename
		if !c.cfg.IsSet(at + "update_server") {
			server = d.UpdateServer
		}
		if !c.cfg.IsSet(at + "update_filename") {
			if !c.cfg.IsSet(at+"update_server") || d.UpdateFilename == "" {
				continue // the same pair as [dhcp]'s, checked there
			}
			file, at = d.UpdateFilename, "dhcp."
		}
		c.joinedURL(at+"update_filename", server, file)
	}
}

// joinedURL checks one option 66 (server, "" for the appliance's URL)
// and 67 (file) pair; problems go to key.
func (c *compiler) joinedURL(key, server, file string) {
	if file == "" {
		return
	}
	explicit := server != ""
	if !explicit {
		server = c.plan.SettingURL
	}
	joined := strings.TrimSuffix(server, "/") + "/" + strings.TrimPrefix(file, "/")
	u, err := url.Parse(joined)
	if err != nil {
		c.errs.Add(key, "joined to option 66 it makes %q, which is not a URL", joined)
		return
	}
	if explicit && !c.ours(u) {
		return // another server's file: not ours to check
	}
	if !c.plan.HTTP.Routes(u.Path) {
		c.errs.Add(key, "phones join option 66 and 67 into %s, which this appliance does not serve (they would get 404); "+
			"leave update_filename out (option 66 alone is the whole URL), or name a settings file such as snom{type}.htm, or set http.url to the URL you want", maskURL(u))
	}
}

// ours reports whether u names this appliance: the host of http.url, the
// advertised address, or the LAN address.
func (c *compiler) ours(u *url.URL) bool {
	host := u.Hostname()
	if t := c.plan.Catalog.URL(); !t.IsZero() {
		if tu, err := url.Parse(t.Raw); err == nil && strings.EqualFold(tu.Hostname(), host) {
			return true
		}
	}
	return c.ourAddress(u)
}

// ourAddress reports whether u's host is this appliance's address.
func (c *compiler) ourAddress(u *url.URL) bool {
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return false
	}
	return a == c.plan.LAN.Advertise || (c.plan.LAN.Known() && a == c.plan.LAN.Prefix.Addr()) || slices.Contains(c.subnetAddrs, a)
}

// handedURL checks the URL factory-fresh phones are handed (PnP NOTIFY,
// DHCP option 66): with Basic auth on it must carry the credentials, or
// every fetch is 401 and the phone never gets a setting.
func (c *compiler) handedURL() {
	h := c.cfg.HTTP
	if h.Username == "" {
		return
	}
	check := func(key, raw string) {
		u, err := url.Parse(raw)
		if err != nil || !c.ours(u) {
			return
		}
		pass, _ := u.User.Password()
		if u.User == nil || u.User.Username() != h.Username || pass != h.Password {
			c.errs.Add(key, "Basic auth is on (http.username), but this URL, which factory-fresh phones are handed, does not carry those credentials, "+
				"so every fetch would be 401; write it as %s (http.password in place of PASSWORD), or leave it out to get that URL by default", withUser(u, h.Username, "PASSWORD"))
		}
	}
	if h.URL != "" {
		check("http.url", h.URL)
	}
	if c.cfg.DHCP.Enabled && c.cfg.DHCP.UpdateServer != "" {
		check("dhcp.update_server", c.cfg.DHCP.UpdateServer)
	}
	for i, sn := range c.cfg.DHCP.Subnets {
		if c.cfg.DHCP.Enabled && sn.UpdateServer != "" {
			check(fmt.Sprintf("dhcp.subnets[%d].update_server", i), sn.UpdateServer)
		}
	}
}

func withUser(u *url.URL, user, password string) string {
	v := *u
	v.User = url.UserPassword(user, password)
	return v.String()
}

func maskURL(u *url.URL) string { return redact.URL(u.String()) }

// RestartNeeded reports, as an error naming the keys, whether next changes
// what the appliance set up at start (which servers run, the interface,
// the state directory): such a reload is refused whole. What each running
// server has bound (listen addresses, interfaces, ports) is that server's
// RestartNeeded to say; the appliance asks both.
func RestartNeeded(cur, next *Plan) error {
	old, cfg := cur.Config, next.Config
	var changed []string
	if old.PnP.Enabled != cfg.PnP.Enabled {
		changed = append(changed, "pnp.enabled")
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
		return fmt.Errorf("changing %s needs a restart (systemctl restart snomprov); nothing was reloaded", strings.Join(changed, ", "))
	}
	return nil
}

// Interfaces is Runtime.Interfaces for this machine.
func Interfaces() (map[string][]netip.Prefix, error) { return netif.AllIPv4() }

// InterfaceExists is Runtime.InterfaceExists for this machine.
func InterfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// ResolveLAN finds the appliance's LAN on this machine: server.interface
// (or the interface of the default route), its first IPv4 address and
// subnet, and server.advertise or that address.
func ResolveLAN(cfg *config.Config) (LAN, error) {
	ifname := cfg.Server.Interface
	if ifname == "" {
		var err error
		if ifname, err = netif.DefaultRouteInterface(); err != nil {
			return LAN{}, fmt.Errorf("no [server] interface configured and %w", err)
		}
	}
	pfx, err := netif.IPv4(ifname)
	if err != nil {
		return LAN{Interface: ifname}, err
	}
	adv := cfg.Server.Advertise
	if !adv.IsValid() {
		adv = pfx.Addr()
	}
	return LAN{Interface: ifname, Prefix: pfx, Advertise: adv}, nil
}

// CompileDecoded is Compile for what config.Decode returned, problems
// included: the compile runs on whatever decoded, so check reports every
// problem of a file at once, decoding and compiling alike. The verdict is
// Compile's on a file that decodes.
func CompileDecoded(cfg *config.Config, decodeErr error, lan LAN, rt Runtime) (*Plan, error) {
	if decodeErr == nil {
		return Compile(cfg, lan, rt)
	}
	var decoded config.Errors
	if cfg == nil || !errors.As(decodeErr, &decoded) {
		return nil, decodeErr
	}
	p, err := Compile(cfg, lan, rt)
	p.Close()
	var more config.Errors
	errors.As(err, &more)
	return nil, &Problems{Errors: decoded.Merge(more), Warnings: WarningsOf(err)}
}
