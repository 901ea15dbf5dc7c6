package dhcp

import (
	"net/netip"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// clientKey identifies a client: option 61 when sent, else the hardware address.
type clientKey string

func keyFor(mac phone.MAC, clientID []byte) clientKey {
	if len(clientID) > 0 {
		return clientKey("id:" + string(clientID))
	}
	return clientKey("hw:" + string(mac[:]))
}

type offer struct {
	ip      netip.Addr
	expires time.Time
	probing bool // a conflict probe for ip is in flight; its OFFER follows
}

// pool is the allocator of every subnet: one lease table (addresses of
// different subnets never collide) and a range per subnet. It is not safe
// for concurrent use: the server serialises every call under its mutex.
type pool struct {
	ranges     []*prange             // by scope: the primary subnet's, then each of Options.Subnets; nil for a subnet without a pool
	leases     map[netip.Addr]*Lease // every address ever leased, including expired ones
	byClient   map[clientKey]*Lease  // the client's most recent lease
	offers     map[clientKey]offer   // addresses held between OFFER and REQUEST
	offered    map[netip.Addr]clientKey
	reservedIP map[netip.Addr]phone.MAC
}

// prange is one subnet's pool.
type prange struct {
	start, end uint32
	cursor     uint32 // next never-leased candidate
	// noFresh is set once a full scan found no never-leased address, so
	// later allocations go straight to reclaiming.
	noFresh bool
}

func (r *prange) contains(n uint32) bool { return n >= r.start && n <= r.end }

func (r *prange) size() int { return int(r.end-r.start) + 1 }

func newPool(o Options, existing map[netip.Addr]Lease) *pool {
	p := &pool{
		leases:   make(map[netip.Addr]*Lease, len(existing)),
		byClient: make(map[clientKey]*Lease, len(existing)),
		offers:   map[clientKey]offer{},
		offered:  map[netip.Addr]clientKey{},
	}
	p.setRange(o)
	for ip, l := range existing {
		l := l
		p.leases[ip] = &l
		p.index(&l)
	}
	return p
}

// setRange applies (new) pool bounds and reservations of every subnet;
// leases are kept.
func (p *pool) setRange(o Options) {
	p.ranges = p.ranges[:0]
	p.reservedIP = map[netip.Addr]phone.MAC{}
	for _, sn := range o.all() {
		if !sn.hasPool() {
			p.ranges = append(p.ranges, nil) // keeps each later subnet at its scope
			continue
		}
		start := addrU32(sn.PoolStart)
		p.ranges = append(p.ranges, &prange{start: start, end: addrU32(sn.PoolEnd), cursor: start})
		for _, r := range sn.Reservations {
			p.reservedIP[r.IP] = r.MAC
		}
	}
}

func (p *pool) index(l *Lease) {
	if l.State == StateDeclined {
		return // a declined address belongs to nobody
	}
	k := keyFor(l.MAC, nil)
	if l.ClientID != "" {
		k = clientKey("id:" + hexDecode(l.ClientID))
	}
	if cur, ok := p.byClient[k]; !ok || cur.Expiry.Before(l.Expiry) {
		p.byClient[k] = l
	}
}

// inPool reports whether ip is in the pool of any subnet.
func (p *pool) inPool(ip netip.Addr) bool { return p.scopeOf(ip) >= 0 }

// scopeOf is the scope whose pool holds ip, -1 for none.
func (p *pool) scopeOf(ip netip.Addr) int {
	if !ip.Is4() {
		return -1
	}
	n := addrU32(ip)
	for i, r := range p.ranges {
		if r != nil && r.contains(n) {
			return i
		}
	}
	return -1
}

// usage counts, by scope, the addresses of each pool that are held (bound
// or quarantined) at now, and its reserved ones.
func (p *pool) usage(now time.Time) []int {
	used := make([]int, len(p.ranges))
	for ip, l := range p.leases {
		if i := p.scopeOf(ip); i >= 0 && l.Active(now) {
			used[i]++
		}
	}
	for ip := range p.reservedIP {
		if l, ok := p.leases[ip]; !(ok && l.Active(now)) {
			if i := p.scopeOf(ip); i >= 0 {
				used[i]++ // reserved addresses are never handed out dynamically
			}
		}
	}
	return used
}

// freeFor reports whether ip may be given to client k (with hardware address mac) at now.
func (p *pool) freeFor(ip netip.Addr, k clientKey, mac phone.MAC, now time.Time) bool {
	if owner, ok := p.reservedIP[ip]; ok && owner != mac {
		return false
	}
	if ok, holder := p.offeredTo(ip, now); ok && holder != k {
		return false
	}
	l, ok := p.leases[ip]
	if !ok {
		return true
	}
	if l.State == StateDeclined {
		return !now.Before(l.Expiry)
	}
	if p.owns(l, k) {
		return true
	}
	return !l.Active(now)
}

func (p *pool) owns(l *Lease, k clientKey) bool {
	return p.byClient[k] == l
}

func (p *pool) offeredTo(ip netip.Addr, now time.Time) (bool, clientKey) {
	k, ok := p.offered[ip]
	if !ok {
		return false, ""
	}
	if o := p.offers[k]; o.ip != ip || !now.Before(o.expires) {
		return false, ""
	}
	return true, k
}

// candidate picks the address to offer client k in the subnet of scope:
// its reservation res there, the address it is being offered, its previous
// lease, the address it asks for, a never-leased address, then the
// longest-expired one. fresh reports that the address was never leased (so
// it needs a conflict probe); busy that a probe for this client's held
// address is still running. ok is false when the pool is exhausted.
func (p *pool) candidate(k clientKey, mac phone.MAC, res *Reservation, requested netip.Addr, now time.Time, scope int) (ip netip.Addr, fresh, busy, ok bool) {
	if res != nil {
		return res.IP, false, false, true
	}
	if scope >= len(p.ranges) || p.ranges[scope] == nil {
		return netip.Addr{}, false, false, false // subnetFor serves no subnet without a pool
	}
	r := p.ranges[scope]
	in := func(ip netip.Addr) bool { return ip.Is4() && r.contains(addrU32(ip)) }
	if o, ok := p.offers[k]; ok && now.Before(o.expires) && in(o.ip) && p.freeFor(o.ip, k, mac, now) {
		return o.ip, false, o.probing, true
	}
	if l, ok := p.byClient[k]; ok && in(l.IP) && p.freeFor(l.IP, k, mac, now) {
		return l.IP, false, false, true
	}
	if in(requested) && p.freeFor(requested, k, mac, now) {
		_, leased := p.leases[requested]
		return requested, !leased, false, true
	}
	// Never-leased addresses first: they carry no other client's affinity.
	sawUnleased := false
	for i := uint32(0); !r.noFresh && i < uint32(r.size()); i++ {
		n := r.cursor
		r.cursor++
		if r.cursor > r.end || r.cursor < r.start {
			r.cursor = r.start
		}
		ip := addrFromU32(n)
		if _, leased := p.leases[ip]; leased {
			continue
		}
		sawUnleased = true
		if p.freeFor(ip, k, mac, now) {
			return ip, true, false, true
		}
	}
	if !sawUnleased {
		r.noFresh = true
	}
	// Reclaim: the address that has been free the longest.
	var best *Lease
	for ip, l := range p.leases {
		if !in(ip) || !p.freeFor(ip, k, mac, now) {
			continue
		}
		if best == nil || l.Expiry.Before(best.Expiry) {
			best = l
		}
	}
	if best != nil {
		return best.IP, false, false, true
	}
	return netip.Addr{}, false, false, false
}

func (p *pool) hold(k clientKey, ip netip.Addr, until time.Time, probing bool) {
	if o, ok := p.offers[k]; ok && p.offered[o.ip] == k {
		delete(p.offered, o.ip)
	}
	p.offers[k] = offer{ip: ip, expires: until, probing: probing}
	p.offered[ip] = k
}

func (p *pool) dropOffer(k clientKey) {
	if o, ok := p.offers[k]; ok {
		if p.offered[o.ip] == k {
			delete(p.offered, o.ip)
		}
		delete(p.offers, k)
	}
}

// expireOffers forgets offers nobody requested.
func (p *pool) expireOffers(now time.Time) {
	for k, o := range p.offers {
		if !now.Before(o.expires) {
			p.dropOffer(k)
		}
	}
}

// bind records l as the client's lease and returns the stored copy and,
// if the client moved to another address, its old lease now released (to be
// journalled too, so the old address is not held after a restart).
func (p *pool) bind(k clientKey, l Lease) (Lease, *Lease) {
	p.dropOffer(k)
	var moved *Lease
	if old, ok := p.byClient[k]; ok && old.IP != l.IP && old.State == StateBound {
		old.State = StateReleased
		c := *old
		moved = &c
	}
	if prev, ok := p.leases[l.IP]; ok && prev != p.byClient[k] {
		// Another client's expired lease on this address: forget its affinity.
		for ck, pl := range p.byClient {
			if pl == prev {
				delete(p.byClient, ck)
				break
			}
		}
	}
	nl := l
	p.leases[l.IP] = &nl
	p.byClient[k] = &nl
	return nl, moved
}

// quarantine takes ip out of the pool until until (DECLINE or probe conflict).
func (p *pool) quarantine(ip netip.Addr, until time.Time) Lease {
	if prev, ok := p.leases[ip]; ok {
		for ck, pl := range p.byClient {
			if pl == prev {
				delete(p.byClient, ck)
				break
			}
		}
	}
	if k, ok := p.offered[ip]; ok {
		p.dropOffer(k)
	}
	l := Lease{IP: ip, Expiry: until, State: StateDeclined}
	p.leases[ip] = &l
	return l
}

func (p *pool) all() []Lease {
	out := make([]Lease, 0, len(p.leases))
	for _, l := range p.leases {
		out = append(out, *l)
	}
	return out
}
