// Package dhcp is snomprov's DHCPv4 server: it leases addresses on one LAN
// interface and hands Snom phones their provisioning URL in options 66/67
// (and, on request, inside option 43). Leases are durable: an ACK leaves only
// after its lease is fsynced to a journal in the state directory.
//
// The server follows snomprov's server contract: New, Bind (opens every
// socket), Serve (blocks until the context ends) and Reload.
package dhcp

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

// Serve modes.
const (
	ServeAll    = "all"    // answer every client
	ServePhones = "phones" // answer only Snom phones (option 60 "snom*" or a Snom OUI)
)

// Reservation pins an address to a MAC. Reservations always win over the pool.
type Reservation struct {
	MAC      phone.MAC
	IP       netip.Addr
	Hostname string
}

// Options configure the server. The lead fills them from [dhcp] in the
// config; zero values get the defaults documented per field.
type Options struct {
	Interface string       // LAN interface the socket is bound to (SO_BINDTODEVICE); "" = any (tests only)
	ServerIP  netip.Addr   // our address on that interface: option 54, and the source of probes
	Subnet    netip.Prefix // subnet of the pool; if it does not contain ServerIP the pool is served to relays only
	// Pool is the range as written in the config, "10.0.0.100-10.0.0.199";
	// Prepare parses it into PoolStart and PoolEnd. Tests may set those directly.
	// The primary subnet may have none when Subnets has entries (a VLAN- or
	// relays-only appliance): the LAN subnet is then not served at all.
	Pool      string
	PoolStart netip.Addr
	PoolEnd   netip.Addr
	Router    netip.Addr // option 3, optional
	DNS       []netip.Addr
	NTP       []netip.Addr // option 42
	Domain    string       // option 15
	// TimeOffset is option 2 (seconds east of UTC); nil = not sent.
	TimeOffset *time.Duration
	LeaseTime  time.Duration // default 12h
	Serve      string        // ServeAll (default) or ServePhones
	// UpdateServer is option 66 (the setting-server URL), UpdateFilename option 67.
	// Both are sent to phones even when they do not ask for them.
	UpdateServer, UpdateFilename string
	VendorOptions                bool // also send 66/67/132/133 inside option 43 (Snom encoding)
	VoiceVLAN, VoicePriority     int  // options 132/133 when VoiceVLAN > 0
	Reservations                 []Reservation
	AllowOtherServers            bool // skip the start-up refusal when another DHCP server answers
	// Authoritative answers an INIT-REBOOT REQUEST from a client the server
	// has no record of (or one asking for another address than its lease):
	// ACK when the address is free, NAK when not, as dnsmasq's
	// dhcp-authoritative does. Off (RFC 2131 §4.3.2): such a client gets
	// silence, and one asking for another address than its lease a NAK.
	Authoritative bool
	// ExtraOptions are more options for OFFERs and ACKs (code, type, value).
	ExtraOptions []ExtraOption
	// Subnets are more subnets beside this one, for VLANs and relays. Each
	// entry is an Options of which only the subnet's own fields are read:
	// Interface, ServerIP, Subnet (its network), the pool, Router, DNS, NTP,
	// Domain, TimeOffset, LeaseTime, the phone options, Reservations and
	// ExtraOptions. With Interface set it is a local subnet, its clients
	// arrive on that interface (a VLAN sub-interface) and ServerIP is our
	// address there; without, it is relayed: served to DHCP relays whose
	// giaddr is in its network, and ServerIP is the address they forward to.
	// The server-wide fields (Serve, StateDir, Port, the timers) are this
	// Options' own; Prepare refuses an entry that sets one.
	Subnets    []Options
	scope      int           // the pool range of this subnet: 0 the primary, i+1 Subnets[i]
	encoded    []extraOption // every option of OFFERs and ACKs, encoded by normalize
	serverID   []byte        // option 54
	leaseTimes leaseTimes    // options 51, 58, 59 for LeaseTime
	StateDir   string        // leases live here (dhcp-leases.json + dhcp-leases.journal)

	// Port is the server port (default 67); clients are answered on Port+1.
	// Only tests change it.
	Port int
	// ConflictProbe is how long to wait for an ICMP echo reply before offering
	// an address that was never leased (default 300ms; negative disables).
	ConflictProbe time.Duration
	// DeclineTime is how long a declined or conflicting address stays out of
	// the pool (default 10m).
	DeclineTime time.Duration
	// OfferTime is how long an offered address is held for its client (default 30s).
	OfferTime time.Duration
	// OtherServerWait is how long Serve listens for other DHCP servers before
	// answering clients (default 2s; negative skips the check).
	OtherServerWait time.Duration
}

// Defaults.
const (
	DefaultLeaseTime       = 12 * time.Hour
	DefaultConflictProbe   = 300 * time.Millisecond
	DefaultDeclineTime     = 10 * time.Minute
	DefaultOfferTime       = 30 * time.Second
	DefaultOtherServerWait = 2 * time.Second
)

// Prepare fills defaults and checks every rule the server runs by: it is
// the only place those rules live. Errors are field.Errors keyed like the
// [dhcp] section ("pool", "reservations[2].ip", "subnets[1].pool"); a
// problem with the LAN itself (the server address or subnet) has an empty
// key. Checks that need the subnet are skipped when Subnet is the zero
// Prefix (a check run away from the LAN); New and Reload always have one.
func Prepare(o Options) (*Prepared, error) {
	var errs field.Errors
	o.defaults()
	o.checkServer(&errs)
	extra := o.checkSubnet(&errs, "dhcp")
	subs := slices.Clone(o.Subnets)
	subExtra := make([][]extraOption, len(subs))
	for i := range subs {
		at := fmt.Sprintf("subnets[%d]", i)
		sub := &subs[i]
		if o.serverWide(sub) {
			errs.Add(at, "sets a server-wide option; only [dhcp] sets serve, state_dir, port, authoritative, allow_other_servers and the timers")
		}
		o.shareServer(sub, i+1)
		var serrs field.Errors
		subExtra[i] = sub.checkSubnet(&serrs, "dhcp."+at)
		for _, fe := range serrs {
			errs.Add(field.Prefix(at, fe.Key), "%s", fe.Msg)
		}
	}
	o.Subnets = subs
	checkDisjoint(&o, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	o.finish(extra)
	for i := range o.Subnets {
		o.Subnets[i].finish(subExtra[i])
	}
	return &Prepared{o: o}, nil
}

func (o *Options) defaults() {
	if o.LeaseTime == 0 {
		o.LeaseTime = DefaultLeaseTime
	}
	if o.ConflictProbe == 0 {
		o.ConflictProbe = DefaultConflictProbe
	}
	if o.DeclineTime <= 0 {
		o.DeclineTime = DefaultDeclineTime
	}
	if o.OfferTime <= 0 {
		o.OfferTime = DefaultOfferTime
	}
	if o.OtherServerWait == 0 {
		o.OtherServerWait = DefaultOtherServerWait
	}
	if o.Port == 0 {
		o.Port = 67
	}
	if o.Serve == "" {
		o.Serve = ServeAll
	}
}

// serverWide reports whether subnet entry sub sets what only the server
// as a whole has, to another value than o's (a prepared Options given back
// carries o's in each entry).
func (o *Options) serverWide(sub *Options) bool {
	return differs(sub.Serve, o.Serve) || differs(sub.StateDir, o.StateDir) || differs(sub.Port, o.Port) ||
		differs(sub.Authoritative, o.Authoritative) || differs(sub.AllowOtherServers, o.AllowOtherServers) ||
		differs(sub.ConflictProbe, o.ConflictProbe) || differs(sub.DeclineTime, o.DeclineTime) ||
		differs(sub.OfferTime, o.OfferTime) || differs(sub.OtherServerWait, o.OtherServerWait) || len(sub.Subnets) > 0
}

// differs reports whether mine is set and is not theirs.
func differs[T comparable](mine, theirs T) bool {
	var zero T
	return mine != zero && mine != theirs
}

// shareServer gives subnet entry sub the server-wide fields of o and its
// scope (the index of its pool range).
func (o *Options) shareServer(sub *Options, scope int) {
	sub.Serve, sub.StateDir, sub.Port = o.Serve, o.StateDir, o.Port
	sub.Authoritative, sub.AllowOtherServers = o.Authoritative, o.AllowOtherServers
	sub.ConflictProbe, sub.DeclineTime, sub.OfferTime, sub.OtherServerWait = o.ConflictProbe, o.DeclineTime, o.OfferTime, o.OtherServerWait
	sub.Subnets, sub.scope = nil, scope
	if sub.LeaseTime == 0 {
		sub.LeaseTime = DefaultLeaseTime
	}
}

// finish encodes what every reply of the subnet carries.
func (o *Options) finish(extra []extraOption) {
	o.encoded = encodeOptions(o, extra)
	o.serverID = o.ServerIP.AsSlice()
	o.leaseTimes = encodeLeaseTimes(o.LeaseTime)
}

// checkServer checks the server-wide options.
func (o *Options) checkServer(errs *field.Errors) {
	if o.ConflictProbe > 5*time.Second {
		errs.Add("conflict_probe", `must be between "0s" (off) and "5s"; the default is "300ms"`)
	}
	if o.Serve != ServeAll && o.Serve != ServePhones {
		errs.Add("serve", "%s", field.NotOneOf(o.Serve, ServeAll, ServePhones))
	}
	if o.Port < 1 || o.Port > 65534 {
		errs.Add("", "port %d out of range", o.Port)
	}
}

// checkSubnet checks one subnet's options and returns its extra options
// encoded. name is its section in the config, "dhcp" for the primary
// subnet (whose Subnet is the interface's), "dhcp.subnets[1]" for an entry
// of Subnets (whose Subnet is its network key); messages quote keys with it.
func (o *Options) checkSubnet(errs *field.Errors, name string) []extraOption {
	primary := name == "dhcp"
	// The primary subnet is the interface's; an entry's is its own network key.
	netKey, netName := "", "the interface's subnet"
	if !primary {
		netKey, netName = "network", "its network"
	}
	if o.LeaseTime < time.Minute {
		errs.Add("lease_time", "%v is too short; use at least \"1m\" (the default is \"12h\")", o.LeaseTime)
	}
	if o.TimeOffset != nil && (*o.TimeOffset < -24*time.Hour || *o.TimeOffset > 24*time.Hour) {
		errs.Add("time_offset", `must be between "-24h" and "24h", e.g. "1h" for UTC+1`)
	}
	if o.Pool != "" {
		var err error
		if o.PoolStart, o.PoolEnd, err = ParsePool(o.Pool); err != nil {
			errs.Add("pool", "%v", err)
		}
	}
	poolOK := o.PoolStart.Is4() && o.PoolEnd.Is4() && !o.PoolEnd.Less(o.PoolStart)
	noPool := o.Pool == "" && !o.PoolStart.IsValid() && !o.PoolEnd.IsValid()
	switch {
	case noPool && primary && len(o.Subnets) > 0:
		// A VLAN- or relays-only appliance: the LAN has a DHCP server of
		// its own, so [dhcp] serves nothing there (subnetFor drops it).
		if len(o.Reservations) > 0 {
			errs.Add("reservations[0]", "[dhcp] has no pool, so the LAN subnet is not served and its reservations would never be handed out; "+
				"move them to the [[dhcp.subnets]] entry whose network holds them, or give [dhcp] a pool")
		}
	case noPool && primary:
		errs.Add("pool", `DHCP needs a pool to serve from; add pool = "10.0.0.100-10.0.0.199" (reservations are served beside it), `+
			`or leave it out and serve only [[dhcp.subnets]]`)
	case noPool:
		errs.Add("pool", `DHCP needs a pool to serve from; add pool = "10.0.0.100-10.0.0.199" (reservations are served beside it)`)
	case o.Pool == "" && !poolOK:
		errs.Add("pool", "%v-%v is not an ascending IPv4 range; write it as \"10.0.0.100-10.0.0.199\"", o.PoolStart, o.PoolEnd)
	}
	in := func(a netip.Addr) bool { return poolOK && !a.Less(o.PoolStart) && !o.PoolEnd.Less(a) }
	if o.Router.IsValid() {
		if o.Router = o.Router.Unmap(); !o.Router.Is4() {
			errs.Add("router", "%v is not an IPv4 address", o.Router)
		} else if in(o.Router) {
			errs.Add("router", "router %v is inside %s.pool %v-%v; shrink the pool so it excludes the router", o.Router, name, o.PoolStart, o.PoolEnd)
		}
	}
	for i, a := range o.DNS {
		if !a.Unmap().Is4() {
			errs.Add(fmt.Sprintf("dns[%d]", i), "%v is not an IPv4 address; DHCP here is IPv4 only", a)
		}
	}
	for i, a := range o.NTP {
		if !a.Unmap().Is4() {
			errs.Add(fmt.Sprintf("ntp[%d]", i), "%v is not an IPv4 address; DHCP here is IPv4 only", a)
		}
	}
	if o.Domain != "" && !validDomain(o.Domain) {
		errs.Add("domain", "%q is not a domain name; write it like \"office.lan\"", o.Domain)
	}
	// An entry's network is always known (it is in the file); its server
	// address only on the machine itself.
	lan := o.Subnet.IsValid() || (primary && o.ServerIP.IsValid())
	server := o.ServerIP.IsValid() || primary
	if lan {
		if server && !o.ServerIP.Unmap().Is4() {
			errs.Add("", "the server address %v is not an IPv4 address: set [server] advertise", o.ServerIP)
		}
		o.ServerIP = o.ServerIP.Unmap()
		switch {
		case !o.Subnet.IsValid() || !o.Subnet.Addr().Is4() || o.Subnet.Bits() < 8 || o.Subnet.Bits() > 30:
			errs.Add(netKey, "the LAN subnet %v is not an IPv4 prefix between /8 and /30, so DHCP cannot serve it", o.Subnet)
			lan = false
		case !primary && o.Subnet != o.Subnet.Masked():
			errs.Add(netKey, "%v has bits set past its prefix length; write the network as %v", o.Subnet, o.Subnet.Masked())
			lan = false
		}
	}
	if lan {
		o.Subnet = o.Subnet.Masked()
		if poolOK {
			switch {
			case !o.Subnet.Contains(o.PoolStart) || !o.Subnet.Contains(o.PoolEnd):
				errs.Add("pool", "the pool %v-%v is outside %s %v; use addresses from that subnet", o.PoolStart, o.PoolEnd, netName, o.Subnet)
			case o.PoolStart == o.Subnet.Addr() || o.PoolEnd == lastAddr(o.Subnet):
				errs.Add("pool", "the pool %v-%v contains the network or broadcast address of %v; start it above %v and end it below %v",
					o.PoolStart, o.PoolEnd, o.Subnet, o.Subnet.Addr(), lastAddr(o.Subnet))
			case server && in(o.ServerIP):
				errs.Add("pool", "the pool %v-%v contains this server's own address %v; shrink the pool so it excludes it", o.PoolStart, o.PoolEnd, o.ServerIP)
			}
		}
		if o.Router.Is4() && !o.Subnet.Contains(o.Router) {
			errs.Add("router", "router %v is outside %s %v; phones could not reach it", o.Router, netName, o.Subnet)
		}
	}
	if o.VoiceVLAN < 0 || o.VoiceVLAN > 4094 {
		errs.Add("voice_vlan", "must be a VLAN ID from 1 to 4094, or 0 for none")
	}
	if o.VoicePriority < 0 || o.VoicePriority > 7 {
		errs.Add("voice_priority", "must be an 802.1p priority from 0 to 7")
	}
	if o.UpdateServer != "" && !absoluteHTTP(o.UpdateServer) {
		errs.Add("update_server", "%q is not an absolute http:// or https:// URL with a host; write it like \"http://10.0.0.2/\", or leave it out for the appliance's own URL", o.UpdateServer)
	}
	// A DHCP option carries at most 255 bytes; Snom's option 43 wraps 66/67
	// again inside one, with two bytes of header each.
	if n := len(o.UpdateServer); n > maxOptionText {
		errs.Add("update_server", "the setting-server URL is %d bytes; a DHCP option carries at most %d: shorten http.url or dhcp.update_server", n, maxOptionText)
	}
	if n := len(o.UpdateFilename); n > maxOptionText {
		errs.Add("update_filename", "is %d bytes; a DHCP option carries at most %d", n, maxOptionText)
	}
	o.checkReservations(errs, name, netName, lan, server)
	extra, ferrs := prepareExtraOptions(o.ExtraOptions, o)
	*errs = append(*errs, ferrs...)
	return extra
}

func (o *Options) checkReservations(errs *field.Errors, name, netName string, lan, server bool) {
	o.Reservations = slices.Clone(o.Reservations) // normalised below; the caller's stay as given
	seenMAC := map[phone.MAC]int{}
	seenIP := map[netip.Addr]int{}
	for i, r := range o.Reservations {
		at := fmt.Sprintf("reservations[%d]", i)
		if r.MAC.IsZero() {
			errs.Add(field.Prefix(at, "mac"), "a reservation needs a mac")
		} else if j, dup := seenMAC[r.MAC]; dup {
			errs.Add(field.Prefix(at, "mac"), "MAC %s is reserved twice (%s.reservations[%d] and [%d]); keep one reservation per phone", r.MAC.Colon(), name, j, i)
		} else {
			seenMAC[r.MAC] = i
		}
		ip := r.IP.Unmap()
		o.Reservations[i].IP = ip
		switch {
		case !r.IP.IsValid():
			errs.Add(field.Prefix(at, "ip"), "a reservation needs an ip")
			continue
		case !ip.Is4():
			errs.Add(field.Prefix(at, "ip"), "%v is not an IPv4 address; DHCP here is IPv4 only", r.IP)
			continue
		}
		if j, dup := seenIP[ip]; dup {
			errs.Add(field.Prefix(at, "ip"), "address %v is reserved for both %s.reservations[%d] and [%d]; give each phone its own address", ip, name, j, i)
		} else {
			seenIP[ip] = i
		}
		// A reservation inside the pool is fine: it always wins, and the
		// pool never hands its address to anyone else (as in Kea).
		switch {
		case ip == o.Router:
			errs.Add(field.Prefix(at, "ip"), "address %v is the router's; reserve another", ip)
		case lan && server && ip == o.ServerIP:
			errs.Add(field.Prefix(at, "ip"), "address %v is this server's own address", ip)
		case lan && o.Subnet.IsValid() && !o.Subnet.Contains(ip):
			errs.Add(field.Prefix(at, "ip"), "address %v is outside %s %v", ip, netName, o.Subnet)
		}
	}
}

// checkDisjoint: no two subnets share a network, an interface or pool
// addresses. Errors name the later subnet.
func checkDisjoint(o *Options, errs *field.Errors) {
	all := o.all()
	for i := 1; i < len(all); i++ {
		at := fmt.Sprintf("subnets[%d]", i-1)
		a := all[i]
		for j := 0; j < i; j++ {
			b := all[j]
			other := "the primary subnet ([dhcp])"
			if j > 0 {
				other = fmt.Sprintf("subnets[%d]", j-1)
			}
			switch {
			case a.Subnet.IsValid() && b.Subnet.IsValid() && a.Subnet.Overlaps(b.Subnet):
				errs.Add(field.Prefix(at, "network"), "%v overlaps %v of %s; each subnet needs a network of its own", a.Subnet, b.Subnet, other)
			case poolsOverlap(a, b):
				errs.Add(field.Prefix(at, "pool"), "the pool %v-%v overlaps %v-%v of %s", a.PoolStart, a.PoolEnd, b.PoolStart, b.PoolEnd, other)
			}
			if a.Interface != "" && a.Interface == b.Interface {
				errs.Add(field.Prefix(at, "interface"), "interface %q already serves %s; one interface serves one subnet (a VLAN sub-interface per subnet, e.g. %s.20)", a.Interface, other, a.Interface)
			}
		}
	}
}

func poolsOverlap(a, b *Options) bool {
	if !a.PoolStart.Is4() || !a.PoolEnd.Is4() || !b.PoolStart.Is4() || !b.PoolEnd.Is4() {
		return false
	}
	return !a.PoolEnd.Less(b.PoolStart) && !b.PoolEnd.Less(a.PoolStart)
}

// all is the primary subnet followed by every entry of Subnets, each at
// the index of its scope.
func (o *Options) all() []*Options {
	out := make([]*Options, 0, 1+len(o.Subnets))
	out = append(out, o)
	for i := range o.Subnets {
		out = append(out, &o.Subnets[i])
	}
	return out
}

// hasPool reports whether the subnet has a pool; only the primary may
// have none (Prepare), and then it is not served.
func (o *Options) hasPool() bool { return o.PoolStart.IsValid() }

// ServesLAN reports whether the LAN subnet itself is served: false when
// [dhcp] has no pool and only its subnets are.
func (o *Options) ServesLAN() bool { return o.hasPool() }

// poolText is the pool for the log.
func (o *Options) poolText() string {
	if !o.hasPool() {
		return "none (not served)"
	}
	return o.PoolStart.String() + "-" + o.PoolEnd.String()
}

// notServed is why a request matching the primary subnet without a pool
// is dropped.
const notServed = " is not served ([dhcp] has no pool)"

// subnetFor picks the subnet a request belongs to, from the prepared
// options o, in Kea's order: a relayed request (giaddr set) the subnet
// whose network holds giaddr (RFC 2131 §4.3.1); a client that has an
// address (ciaddr: RENEWING, which unicasts to us without the relay, and
// INFORM) the subnet holding it; else the subnet of the interface it
// arrived on, if our own address is in that subnet (otherwise that subnet
// is served to relays only). A subnet without a pool (the primary, on a
// VLAN- or relays-only appliance) matches but is not served. nil and the
// reason when none is served; unserved is true when the request is for that
// subnet, which the config chose not to serve (the office router's
// clients), rather than for one it does not know.
func (o *Options) subnetFor(giaddr, ciaddr netip.Addr, iface string) (sn *Options, why string, unserved bool) {
	// Per request: no allocation, so not all().
	at := func(i int) *Options {
		if i == 0 {
			return o
		}
		return &o.Subnets[i-1]
	}
	n := 1 + len(o.Subnets)
	if giaddr.IsValid() {
		for i := range n {
			if sn := at(i); sn.Subnet.Contains(giaddr) {
				if !sn.hasPool() {
					return nil, "relayed from " + giaddr.String() + ", whose subnet " + sn.Subnet.String() + notServed, true
				}
				return sn, "", false
			}
		}
		return nil, "relayed from " + giaddr.String() + ", which is in no subnet served here", false
	}
	if ciaddr.IsValid() {
		for i := range n {
			if sn := at(i); sn.Subnet.Contains(ciaddr) {
				if !sn.hasPool() {
					return nil, "from " + ciaddr.String() + " (ciaddr), whose subnet " + sn.Subnet.String() + notServed, true
				}
				return sn, "", false
			}
		}
		return nil, "from " + ciaddr.String() + " (ciaddr), which is in no subnet served here", false
	}
	for i := range n {
		if sn := at(i); (i == 0 && sn.Interface == iface) || (i > 0 && sn.Interface != "" && sn.Interface == iface) {
			switch {
			case !sn.hasPool():
				return nil, "arrived on " + iface + ", whose subnet " + sn.Subnet.String() + notServed, true
			case !sn.Subnet.Contains(sn.ServerIP):
				return nil, "arrived on " + iface + ", whose subnet " + sn.Subnet.String() + " is served to relays only", false
			}
			return sn, "", false
		}
	}
	return nil, "arrived on " + iface + ", which serves no subnet", false
}

// maxOptionText is the longest text 66 or 67 may be: 255 bytes of option,
// less the 2-byte sub-option header it gets again inside option 43.
const maxOptionText = 253

// Prepared is a checked Options with its defaults filled in; Apply swaps it
// into a running server without another check that could fail.
type Prepared struct{ o Options }

// Options returns the prepared options, defaults filled in.
func (p *Prepared) Options() Options { return p.o }

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != ""
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

// ParsePool reads a pool "A-B": IPv4 addresses with A ≤ B, both in the
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

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	n := u32(a) | (1<<(32-p.Bits()) - 1)
	return addrFromU32(n)
}

func u32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func addrU32(a netip.Addr) uint32 { return u32(a.As4()) }

func addrFromU32(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
