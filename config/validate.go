package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// checker runs the semantic checks after decoding. A key the decoder already
// reported is not reported again (its value is only a default by now).
type checker struct {
	*decoder
	cfg      *Config
	reported map[string]bool
}

func (c *checker) fail(path, format string, args ...any) {
	if c.reported[path] {
		return
	}
	c.reported[path] = true
	c.decoder.fail(path, format, args...)
}

func oneOf(v string, allowed ...string) bool { return slices.Contains(allowed, v) }

func quoteAll(allowed []string) string {
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}

func (c *checker) enum(path, v string, allowed ...string) {
	if !oneOf(v, allowed...) {
		c.fail(path, "%q is not allowed; use one of %s", v, quoteAll(allowed))
	}
}

func (c *checker) validate() {
	cfg := c.cfg
	c.server()
	c.http()
	c.enum("pnp.answer", cfg.PnP.Answer, AnswerSnom, AnswerConfigured, AnswerAll, AnswerNone)
	for i, name := range cfg.PnP.Interfaces {
		c.interfaceName(indexKey("pnp.interfaces", i), name)
	}
	c.dhcp()
	if !ValidPerm(cfg.Provision.DefaultPerm) {
		c.fail("provision.default_perm", "%s", permProblem(cfg.Provision.DefaultPerm))
	}
	if cfg.Status.StaleAfter.Duration <= 0 {
		c.fail("status.stale_after", `must be positive, like "24h"`)
	}
	if cfg.Status.AdminUser != "" && cfg.Status.AdminPassword == "" {
		c.fail("status.admin_user", "admin_user is set but admin_password is not; set both, or neither to leave the status page open")
	}
	c.models()
	c.phones()
	for i, e := range cfg.Phonebook {
		at := indexKey("phonebook", i)
		if e.Name == "" && e.Number == "" {
			c.fail(at, "a phonebook entry needs a name and a number")
		} else if e.Number == "" {
			c.fail(joinKey(at, "number"), "a phonebook entry needs a number")
		}
		c.enum(joinKey(at, "type"), e.Type, PhonebookTypes...)
	}
}

func (c *checker) server() {
	s := c.cfg.Server
	if s.Interface != "" {
		c.interfaceName("server.interface", s.Interface)
	}
	if s.Advertise.IsValid() && !s.Advertise.Unmap().Is4() {
		c.fail("server.advertise", "must be an IPv4 address (phones provision over IPv4), like \"10.0.0.2\"")
	}
	if s.StateDir == "" {
		c.fail("server.state_dir", `must not be empty; leave it out for the default "`+DefaultStateDir+`"`)
	}
	c.enum("server.log_level", s.LogLevel, "debug", "info", "warn", "error")
}

// interfaceName accepts what Linux accepts as an interface name.
func (c *checker) interfaceName(path, name string) {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t") {
		c.fail(path, "%q is not a network interface name; use a name from `ip link`, like \"eth0\"", name)
	}
}

func (c *checker) http() {
	h := c.cfg.HTTP
	if host, port, err := net.SplitHostPort(h.Listen); err != nil {
		c.fail("http.listen", "%q is not an address to listen on; write \":80\" or \"10.0.0.2:8080\"", h.Listen)
	} else {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.fail("http.listen", "port %q must be a number from 1 to 65535", port)
		}
		if _, err := netip.ParseAddr(host); host != "" && err != nil {
			c.fail("http.listen", "host %q must be an IP address or empty (all addresses)", host)
		}
	}
	if h.URL != "" {
		c.url("http.url", h.URL)
		c.placeholders("http.url", h.URL)
	}
	c.enum("http.unknown_phones", h.UnknownPhones, UnknownGeneric, UnknownDeny, UnknownAllow)
	c.enum("http.verify_mac", h.VerifyMAC, VerifyOff, VerifyLog, VerifyEnforce)
	if h.Username != "" && h.Password == "" {
		c.fail("http.username", "username is set but password is not; set both to protect the settings with Basic auth")
	}
	if h.Password != "" && h.Username == "" {
		c.fail("http.password", "password is set but username is not; set both to protect the settings with Basic auth")
	}
	if h.TLSCert != "" && h.TLSKey == "" {
		c.fail("http.tls_cert", "tls_cert is set but tls_key is not; set both to serve HTTPS")
	}
	if h.TLSKey != "" && h.TLSCert == "" {
		c.fail("http.tls_key", "tls_key is set but tls_cert is not; set both to serve HTTPS")
	}
	for _, f := range []struct{ key, path string }{{"http.tls_cert", h.TLSCert}, {"http.tls_key", h.TLSKey}} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil || !st.Mode().IsRegular() {
			c.fail(f.key, "file %s not found; give the path of a PEM file", f.path)
		}
	}
	if h.FilesDir != "" {
		if st, err := os.Stat(h.FilesDir); err != nil || !st.IsDir() {
			c.fail("http.files_dir", "directory %s not found; create it or leave files_dir out", h.FilesDir)
		}
	}
}

// url accepts an absolute http or https URL with a host.
func (c *checker) url(path, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		c.fail(path, "%q is not an absolute http:// or https:// URL with a host; write it like \"http://10.0.0.2/\", or leave it empty for the default", raw)
	}
}

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// placeholders accepts only the replacement variables the phone knows.
func (c *checker) placeholders(path, raw string) {
	for _, p := range placeholder.FindAllString(raw, -1) {
		if !oneOf(p, "{mac}", "{phone_type}", "{firmware_version}") {
			c.fail(path, "unknown placeholder %s; phones replace only {mac}, {phone_type} and {firmware_version}", p)
			return
		}
	}
}

func (c *checker) dhcp() {
	d := c.cfg.DHCP
	c.enum("dhcp.serve", d.Serve, ServeAll, ServePhones)
	if d.UpdateServer != "" {
		c.url("dhcp.update_server", d.UpdateServer)
	}
	if d.LeaseTime.Duration < time.Minute {
		c.fail("dhcp.lease_time", `must be at least "1m"; the default is "12h"`)
	}
	if d.ConflictProbe.Duration < 0 || d.ConflictProbe.Duration > 5*time.Second {
		c.fail("dhcp.conflict_probe", `must be between "0s" (off) and "5s"; the default is "300ms"`)
	}
	if d.TimeOffset.Duration < -24*time.Hour || d.TimeOffset.Duration > 24*time.Hour {
		c.fail("dhcp.time_offset", `must be between "-24h" and "24h", e.g. "1h" for UTC+1`)
	}
	if d.VoiceVLAN < 0 || d.VoiceVLAN > 4094 {
		c.fail("dhcp.voice_vlan", "must be a VLAN ID from 1 to 4094, or 0 for none")
	}
	if d.VoicePriority < 0 || d.VoicePriority > 7 {
		c.fail("dhcp.voice_priority", "must be an 802.1p priority from 0 to 7")
	}
	c.ipv4("dhcp.router", d.Router)
	for i, a := range d.DNS {
		c.ipv4(indexKey("dhcp.dns", i), a)
	}
	for i, a := range d.NTP {
		c.ipv4(indexKey("dhcp.ntp", i), a)
	}
	if d.Domain != "" && !validDomain(d.Domain) {
		c.fail("dhcp.domain", "%q is not a domain name; write it like \"office.lan\"", d.Domain)
	}
	if !d.Enabled {
		return
	}
	pool, poolOK := c.pool()
	if d.Pool == "" && len(d.Reservations) == 0 {
		c.fail("dhcp.enabled", `DHCP is enabled but has no pool and no reservations; add pool = "10.0.0.100-10.0.0.199"`)
	}
	if poolOK && d.Router.IsValid() && pool.contains(d.Router.Unmap()) {
		c.fail("dhcp.router", "router %s is inside dhcp.pool %s; shrink the pool so it excludes the router", d.Router, d.Pool)
	}
	if adv := c.cfg.Server.Advertise; poolOK && adv.IsValid() && pool.contains(adv.Unmap()) {
		c.fail("dhcp.pool", "the pool %s contains this server's address %s (server.advertise); shrink the pool so it excludes it", d.Pool, adv)
	}
	byMAC := map[phone.MAC]int{}
	byIP := map[netip.Addr]int{}
	for i, r := range d.Reservations {
		at := indexKey("dhcp.reservations", i)
		if r.MAC.IsZero() {
			c.fail(joinKey(at, "mac"), "a reservation needs a mac")
		} else if j, dup := byMAC[r.MAC]; dup {
			c.fail(joinKey(at, "mac"), "MAC %s is already reserved by dhcp.reservations[%d] (line %d); keep one reservation per phone", r.MAC.Colon(), j, c.pos.lookup(indexKey("dhcp.reservations", j)).Line)
		} else {
			byMAC[r.MAC] = i
		}
		if !r.IP.IsValid() {
			c.fail(joinKey(at, "ip"), "a reservation needs an ip")
			continue
		}
		ip := r.IP.Unmap()
		if !c.ipv4(joinKey(at, "ip"), ip) {
			continue
		}
		if j, dup := byIP[ip]; dup {
			c.fail(joinKey(at, "ip"), "address %s is already reserved by dhcp.reservations[%d] (line %d); give each phone its own address", ip, j, c.pos.lookup(indexKey("dhcp.reservations", j)).Line)
		} else {
			byIP[ip] = i
		}
		if poolOK && pool.contains(ip) {
			c.fail(joinKey(at, "ip"), "address %s is inside dhcp.pool %s, which makes it ambiguous; reserve an address outside the pool", ip, d.Pool)
		}
		if d.Router.IsValid() && ip == d.Router.Unmap() {
			c.fail(joinKey(at, "ip"), "address %s is the router's; reserve another", ip)
		}
	}
}

func (c *checker) ipv4(path string, a netip.Addr) bool {
	if a.IsValid() && !a.Unmap().Is4() {
		c.fail(path, "%s is not an IPv4 address; DHCP here is IPv4 only", a)
		return false
	}
	return true
}

var domainLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validDomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !domainLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// addrRange is an inclusive IPv4 range.
type addrRange struct{ first, last netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return a.Is4() && r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

// ParsePool reads a DHCP pool "A-B": IPv4 addresses with A ≤ B, both in the
// same /16 (a bigger pool is surely a typo).
func ParsePool(s string) (first, last netip.Addr, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return first, last, fmt.Errorf("%q is not a range; write it as \"10.0.0.100-10.0.0.199\"", s)
	}
	if first, err = netip.ParseAddr(strings.TrimSpace(a)); err != nil || !first.Is4() {
		return first, last, fmt.Errorf("%q does not start with an IPv4 address; write it as \"10.0.0.100-10.0.0.199\"", s)
	}
	if last, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil || !last.Is4() {
		return first, last, fmt.Errorf("%q does not end with an IPv4 address; write it as \"10.0.0.100-10.0.0.199\"", s)
	}
	if last.Less(first) {
		return first, last, fmt.Errorf("%q ends before it starts; write the lower address first", s)
	}
	if f, l := first.As4(), last.As4(); f[0] != l[0] || f[1] != l[1] {
		return first, last, fmt.Errorf("%q spans more than a /16; a pool must lie in one subnet", s)
	}
	return first, last, nil
}

func (c *checker) pool() (addrRange, bool) {
	if c.cfg.DHCP.Pool == "" {
		return addrRange{}, false
	}
	first, last, err := ParsePool(c.cfg.DHCP.Pool)
	if err != nil {
		c.fail("dhcp.pool", "%v", err)
		return addrRange{}, false
	}
	return addrRange{first, last}, true
}

func (c *checker) models() {
	for _, name := range sortedModelNames(c.cfg.Models) {
		at := joinKey("models", name)
		if !phone.ValidModel(name) {
			c.fail(at, "%q is not a Snom phone type; write it as the phone reports it, like \"snomD785\"", name)
			continue
		}
		m := c.cfg.Models[name]
		c.firmware(joinKey(at, "firmware"), m.Firmware)
		c.firmware(joinKey(at, "firmware_uxm"), m.FirmwareUXM)
	}
}

// firmware accepts an absolute http(s) URL, or a file that exists in firmware_dir.
func (c *checker) firmware(path, fw string) {
	if fw == "" {
		return
	}
	if strings.Contains(fw, "://") {
		c.url(path, fw)
		return
	}
	clean := filepath.Clean(fw)
	if filepath.IsAbs(fw) || clean == ".." || strings.HasPrefix(clean, "../") {
		c.fail(path, "%q must be a file name inside firmware_dir (%s) or an absolute http:// URL", fw, c.cfg.HTTP.FirmwareDir)
		return
	}
	full := filepath.Join(c.cfg.HTTP.FirmwareDir, clean)
	if st, err := os.Stat(full); err != nil || !st.Mode().IsRegular() {
		c.fail(path, "firmware file %s not found in firmware_dir %s; copy the image there or give an absolute URL", fw, c.cfg.HTTP.FirmwareDir)
	}
}

func (c *checker) phones() {
	first := map[phone.MAC]int{}
	for i, p := range c.cfg.Phones {
		at := indexKey("phones", i)
		switch j, dup := first[p.MAC]; {
		case p.MAC.IsZero():
			c.fail(joinKey(at, "mac"), `a phone needs a mac, like mac = "00:04:13:A1:1F:A7"`)
		case dup:
			c.fail(joinKey(at, "mac"), "duplicate phone: MAC %s is also phones[%d] (line %d); merge the two entries", p.MAC, j, c.pos.lookup(indexKey("phones", j)).Line)
		default:
			first[p.MAC] = i
		}
		if p.Model != "" && !phone.ValidModel(p.Model) {
			c.fail(joinKey(at, "model"), "%q is not a Snom phone type; write it as the phone reports it, like \"snomD785\"", p.Model)
		}
	}
}

func sortedModelNames(m map[string]Model) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ValidateNetwork runs the checks that need the LAN interface's address and
// subnet, known only at start: the DHCP pool, router and reservations must
// lie in the subnet, and the pool must not hold the server's own address.
// It returns Errors, positioned like Load's, or nil. Without [dhcp] enabled
// there is nothing to check.
func (c *Config) ValidateNetwork(ifaceAddr netip.Prefix) error {
	if !c.DHCP.Enabled {
		return nil
	}
	name := c.Source
	if name == "" {
		name = embeddedName
	}
	chk := &checker{decoder: &decoder{file: name, pos: c.positions}, cfg: c, reported: map[string]bool{}}
	subnet := ifaceAddr.Masked()
	self := ifaceAddr.Addr().Unmap()
	if c.DHCP.Pool != "" {
		if first, last, err := ParsePool(c.DHCP.Pool); err == nil {
			pool := addrRange{first, last}
			if !subnet.Contains(first) || !subnet.Contains(last) {
				chk.fail("dhcp.pool", "the pool %s is outside the interface's subnet %s; use addresses from that subnet", c.DHCP.Pool, subnet)
			} else if pool.contains(self) {
				chk.fail("dhcp.pool", "the pool %s contains this server's own address %s; shrink the pool so it excludes it", c.DHCP.Pool, self)
			}
		}
	}
	if r := c.DHCP.Router; r.IsValid() && !subnet.Contains(r.Unmap()) {
		chk.fail("dhcp.router", "router %s is outside the interface's subnet %s; phones could not reach it", r, subnet)
	}
	for i, r := range c.DHCP.Reservations {
		if r.IP.IsValid() && !subnet.Contains(r.IP.Unmap()) {
			chk.fail(joinKey(indexKey("dhcp.reservations", i), "ip"), "address %s is outside the interface's subnet %s", r.IP, subnet)
		} else if r.IP.Unmap() == self {
			chk.fail(joinKey(indexKey("dhcp.reservations", i), "ip"), "address %s is this server's own address", r.IP)
		}
	}
	return chk.errs.asError()
}
