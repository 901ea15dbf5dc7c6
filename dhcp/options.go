// Package dhcp is snomprov's DHCPv4 server: it leases addresses on one LAN
// interface and hands Snom phones their provisioning URL in options 66/67
// (and, on request, inside option 43). Leases are durable: an ACK leaves only
// after its lease is fsynced to a journal in the state directory.
//
// The server follows snomprov's server contract: New, Bind (opens every
// socket), Serve (blocks until the context ends) and Reload.
package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

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

// normalize fills defaults and rejects options the server cannot run with.
// The config package validates the same rules with file:line positions; this
// is the defensive copy for callers that build Options by hand.
func (o Options) normalize() (Options, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
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
		bad("lease time %v is too short: use at least 1m", o.LeaseTime)
	}
	if o.Serve != ServeAll && o.Serve != ServePhones {
		bad("serve = %q: use %q or %q", o.Serve, ServeAll, ServePhones)
	}
	if !o.ServerIP.Is4() {
		bad("server address %v is not an IPv4 address: set [server] advertise", o.ServerIP)
	}
	if !o.Subnet.IsValid() || !o.Subnet.Addr().Is4() || o.Subnet.Bits() < 8 || o.Subnet.Bits() > 30 {
		bad("subnet %v is not an IPv4 prefix between /8 and /30", o.Subnet)
	} else {
		o.Subnet = o.Subnet.Masked()
		if !o.PoolStart.Is4() || !o.PoolEnd.Is4() || o.PoolEnd.Less(o.PoolStart) {
			bad("pool %v-%v is not an ascending IPv4 range: write it as \"10.0.0.100-10.0.0.199\"", o.PoolStart, o.PoolEnd)
		} else {
			if !o.Subnet.Contains(o.PoolStart) || !o.Subnet.Contains(o.PoolEnd) {
				bad("pool %v-%v is outside the subnet %v", o.PoolStart, o.PoolEnd, o.Subnet)
			}
			if o.PoolStart == o.Subnet.Addr() || o.PoolEnd == lastAddr(o.Subnet) {
				bad("pool %v-%v contains the network or broadcast address of %v", o.PoolStart, o.PoolEnd, o.Subnet)
			}
			in := func(a netip.Addr) bool { return !a.Less(o.PoolStart) && !o.PoolEnd.Less(a) }
			if in(o.ServerIP) {
				bad("pool %v-%v contains the server's own address %v: move the pool", o.PoolStart, o.PoolEnd, o.ServerIP)
			}
			if o.Router.IsValid() && in(o.Router) {
				bad("pool %v-%v contains the router %v: move the pool", o.PoolStart, o.PoolEnd, o.Router)
			}
		}
	}
	if o.Port < 1 || o.Port > 65534 {
		bad("port %d out of range", o.Port)
	}
	if o.VoiceVLAN < 0 || o.VoiceVLAN > 4094 {
		bad("voice_vlan %d out of range 0..4094", o.VoiceVLAN)
	}
	if o.VoicePriority < 0 || o.VoicePriority > 7 {
		bad("voice_priority %d out of range 0..7", o.VoicePriority)
	}
	if len(o.UpdateServer) > 250 || len(o.UpdateFilename) > 250 {
		bad("update_server/update_filename longer than 250 bytes do not fit a DHCP option")
	}
	seenMAC := map[phone.MAC]bool{}
	seenIP := map[netip.Addr]phone.MAC{}
	for _, r := range o.Reservations {
		switch {
		case r.MAC.IsZero():
			bad("reservation for %v has no MAC", r.IP)
		case !r.IP.Is4() || (o.Subnet.IsValid() && !o.Subnet.Contains(r.IP)):
			bad("reservation %s -> %v is not an address in %v", r.MAC.Colon(), r.IP, o.Subnet)
		case r.IP == o.ServerIP || r.IP == o.Router:
			bad("reservation %s -> %v takes the server's or router's address", r.MAC.Colon(), r.IP)
		case seenMAC[r.MAC]:
			bad("MAC %s is reserved twice", r.MAC.Colon())
		default:
			if other, dup := seenIP[r.IP]; dup {
				bad("address %v is reserved for both %s and %s", r.IP, other.Colon(), r.MAC.Colon())
			}
		}
		seenMAC[r.MAC] = true
		seenIP[r.IP] = r.MAC
	}
	extra, ferrs := prepareExtraOptions(o.ExtraOptions, &o)
	for _, e := range ferrs {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("dhcp: invalid options: %w", errors.Join(errs...))
	}
	o.encoded = encodeOptions(&o, extra)
	o.serverID = o.ServerIP.AsSlice()
	return o, nil
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
