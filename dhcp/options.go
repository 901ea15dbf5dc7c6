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
	encoded      []extraOption // every option of OFFERs and ACKs, encoded by normalize
	serverID     []byte        // option 54
	leaseTimes   leaseTimes    // options 51, 58, 59 for LeaseTime
	StateDir     string        // leases live here (dhcp-leases.json + dhcp-leases.journal)

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
// [dhcp] section ("pool", "reservations[2].ip"); a problem with the LAN
// itself (the server address or subnet) has an empty key. Checks that need
// the subnet are skipped when Subnet is the zero Prefix (a check run away
// from the LAN); New and Reload always have one.
func Prepare(o Options) (*Prepared, error) {
	var errs field.Errors
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
	if o.LeaseTime < time.Minute {
		errs.Add("lease_time", "%v is too short; use at least \"1m\" (the default is \"12h\")", o.LeaseTime)
	}
	if o.ConflictProbe > 5*time.Second {
		errs.Add("conflict_probe", `must be between "0s" (off) and "5s"; the default is "300ms"`)
	}
	if o.TimeOffset != nil && (*o.TimeOffset < -24*time.Hour || *o.TimeOffset > 24*time.Hour) {
		errs.Add("time_offset", `must be between "-24h" and "24h", e.g. "1h" for UTC+1`)
	}
	if o.Serve != ServeAll && o.Serve != ServePhones {
		errs.Add("serve", "%s", field.NotOneOf(o.Serve, ServeAll, ServePhones))
	}
	if o.Pool != "" {
		var err error
		if o.PoolStart, o.PoolEnd, err = ParsePool(o.Pool); err != nil {
			errs.Add("pool", "%v", err)
		}
	}
	poolOK := o.PoolStart.Is4() && o.PoolEnd.Is4() && !o.PoolEnd.Less(o.PoolStart)
	switch {
	case o.Pool == "" && !o.PoolStart.IsValid() && !o.PoolEnd.IsValid():
		errs.Add("pool", `DHCP needs a pool to serve from; add pool = "10.0.0.100-10.0.0.199" (reservations are served beside it)`)
	case o.Pool == "" && !poolOK:
		errs.Add("pool", "%v-%v is not an ascending IPv4 range; write it as \"10.0.0.100-10.0.0.199\"", o.PoolStart, o.PoolEnd)
	}
	in := func(a netip.Addr) bool { return poolOK && !a.Less(o.PoolStart) && !o.PoolEnd.Less(a) }
	if o.Router.IsValid() {
		if o.Router = o.Router.Unmap(); !o.Router.Is4() {
			errs.Add("router", "%v is not an IPv4 address", o.Router)
		} else if in(o.Router) {
			errs.Add("router", "router %v is inside dhcp.pool %v-%v; shrink the pool so it excludes the router", o.Router, o.PoolStart, o.PoolEnd)
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
	lan := o.Subnet.IsValid() || o.ServerIP.IsValid()
	if lan {
		if !o.ServerIP.Unmap().Is4() {
			errs.Add("", "the server address %v is not an IPv4 address: set [server] advertise", o.ServerIP)
		}
		o.ServerIP = o.ServerIP.Unmap()
		if !o.Subnet.IsValid() || !o.Subnet.Addr().Is4() || o.Subnet.Bits() < 8 || o.Subnet.Bits() > 30 {
			errs.Add("", "the LAN subnet %v is not an IPv4 prefix between /8 and /30, so DHCP cannot serve it", o.Subnet)
		} else {
			o.Subnet = o.Subnet.Masked()
			if poolOK {
				switch {
				case !o.Subnet.Contains(o.PoolStart) || !o.Subnet.Contains(o.PoolEnd):
					errs.Add("pool", "the pool %v-%v is outside the interface's subnet %v; use addresses from that subnet", o.PoolStart, o.PoolEnd, o.Subnet)
				case o.PoolStart == o.Subnet.Addr() || o.PoolEnd == lastAddr(o.Subnet):
					errs.Add("pool", "the pool %v-%v contains the network or broadcast address of %v; start it above %v and end it below %v",
						o.PoolStart, o.PoolEnd, o.Subnet, o.Subnet.Addr(), lastAddr(o.Subnet))
				case in(o.ServerIP):
					errs.Add("pool", "the pool %v-%v contains this server's own address %v; shrink the pool so it excludes it", o.PoolStart, o.PoolEnd, o.ServerIP)
				}
			}
			if o.Router.Is4() && !o.Subnet.Contains(o.Router) {
				errs.Add("router", "router %v is outside the interface's subnet %v; phones could not reach it", o.Router, o.Subnet)
			}
		}
	}
	if o.Port < 1 || o.Port > 65534 {
		errs.Add("", "port %d out of range", o.Port)
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
	o.Reservations = slices.Clone(o.Reservations) // normalised below; the caller's stay as given
	seenMAC := map[phone.MAC]int{}
	seenIP := map[netip.Addr]int{}
	for i, r := range o.Reservations {
		at := fmt.Sprintf("reservations[%d]", i)
		if r.MAC.IsZero() {
			errs.Add(field.Prefix(at, "mac"), "a reservation needs a mac")
		} else if j, dup := seenMAC[r.MAC]; dup {
			errs.Add(field.Prefix(at, "mac"), "MAC %s is reserved twice (dhcp.reservations[%d] and [%d]); keep one reservation per phone", r.MAC.Colon(), j, i)
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
			errs.Add(field.Prefix(at, "ip"), "address %v is reserved for both dhcp.reservations[%d] and [%d]; give each phone its own address", ip, j, i)
		} else {
			seenIP[ip] = i
		}
		// A reservation inside the pool is fine: it always wins, and the
		// pool never hands its address to anyone else (as in Kea).
		switch {
		case ip == o.Router:
			errs.Add(field.Prefix(at, "ip"), "address %v is the router's; reserve another", ip)
		case lan && ip == o.ServerIP:
			errs.Add(field.Prefix(at, "ip"), "address %v is this server's own address", ip)
		case lan && o.Subnet.IsValid() && !o.Subnet.Contains(ip):
			errs.Add(field.Prefix(at, "ip"), "address %v is outside the interface's subnet %v", ip, o.Subnet)
		}
	}
	extra, ferrs := prepareExtraOptions(o.ExtraOptions, &o)
	errs = append(errs, ferrs...)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	o.encoded = encodeOptions(&o, extra)
	o.serverID = o.ServerIP.AsSlice()
	o.leaseTimes = encodeLeaseTimes(o.LeaseTime)
	return &Prepared{o: o}, nil
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
