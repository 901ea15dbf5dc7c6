package dhcp

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// exchange is one request on its way through the handler chain.
type exchange struct {
	req   *dhcpv4.DHCPv4
	peer  netip.AddrPort
	link  *link    // the interface it came in on; nil in unit tests (the LAN's)
	opts  *Options // the server's options, then (admit) its subnet's
	root  *Options // the server's options it was decided with (a reload swaps them)
	now   time.Time
	mtype dhcpv4.MessageType

	mayBlock bool       // running on its own goroutine: may wait for a conflict probe
	out      *outbox    // replies are queued here and sent in one batch; nil: sent at once
	probeIP  netip.Addr // the address to probe first on that goroutine

	mac      phone.MAC
	key      clientKey
	clientID []byte
	model    string
	hostname string
	isPhone  bool // a Snom phone: gets 66/67 forced, and is recorded in the inventory
	reserved *Reservation

	resp      *dhcpv4.DHCPv4
	rtype     dhcpv4.MessageType // resp's message type
	wire      []byte             // resp encoded (encode), and where it goes
	dst       route
	lease     Lease         // the lease an ACK commits
	leaseTime time.Duration // option 51 of an ACK
	commit    bool          // the reply waits until lease is durable
	detail    string        // for the inventory and debug log
}

// stageLease is the index of the "lease" stage in defaultChain.
const stageLease = 1

// stage is one step of the handler chain. It returns false to stop the chain;
// a nil ex.resp at the end means no reply.
type stage struct {
	name string
	run  func(s *Server, ex *exchange) bool
}

// defaultChain is the order every request goes through: check who is asking,
// decide on an address, add options, make the lease durable.
func defaultChain() []stage {
	return []stage{
		{"admit", (*Server).admit},
		{"lease", (*Server).decide},
		{"options", (*Server).addOptions},
		{"durable", (*Server).makeDurable},
	}
}

func (s *Server) handlePacket(b []byte, peer netip.AddrPort) { s.handle(b, peer, nil, nil) }

// handle runs one datagram that came in on l through the chain; replies it
// produces at once (OFFER, NAK, an ACK with nothing to write) are queued on
// out when not nil.
func (s *Server) handle(b []byte, peer netip.AddrPort, l *link, out *outbox) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		s.log.Debug("ignoring malformed datagram", "from", peer, "len", len(b), "err", err)
		return
	}
	opts := s.opts.Load()
	ex := &exchange{req: req, peer: peer, link: l, opts: opts, root: opts, now: s.now(), out: out}
	s.runChain(ex, 0)
}

// runChain runs the stages from index from on. A stage returning false has
// either decided on silence or taken over sending the reply.
func (s *Server) runChain(ex *exchange, from int) {
	for _, st := range s.chain[from:] {
		if !st.run(s, ex) {
			return
		}
	}
	if ex.resp != nil {
		s.sendReply(ex)
	}
}

func (s *Server) sendReply(ex *exchange) {
	s.encode(ex)
	s.deliver(ex)
}

// encode turns the reply into its datagram and route. It runs where the
// request was decided (a reader), so the lease writer, which every ACK
// waits for, only writes, fsyncs and sends bytes.
func (s *Server) encode(ex *exchange) {
	l2 := s.l2unicast
	if ex.link != nil {
		l2 = ex.link.l2 != nil
	}
	ex.dst = replyDestination(ex.req, ex.resp, ex.opts.Port, l2)
	ex.dst.via, ex.dst.src = ex.link, ex.opts.ServerIP
	ex.wire = ex.resp.ToBytes()
	opts := ex.resp.Options
	ex.resp = nil
	clear(opts) // the values are shared or encoded once: only the map is reused
	optionMaps.Put(opts)
}

// optionMaps holds the option maps of replies already encoded: a map sized
// for a reply's dozen options costs several allocations to make.
var optionMaps sync.Pool

// replyOptions is an empty option map with room for the options every
// reply carries (53, 54, 51, 58, 59, 61, 82) and configured ones.
func replyOptions(configured int) dhcpv4.Options {
	if m, ok := optionMaps.Get().(dhcpv4.Options); ok {
		return m
	}
	return make(dhcpv4.Options, 8+configured)
}

// deliver queues or sends the encoded reply; it is recorded once sent.
func (s *Server) deliver(ex *exchange) {
	if ex.out != nil {
		ex.out.add(ex) // sent with the batch; a failure is logged there
		return
	}
	if err := s.send(ex.wire, ex.dst); err != nil {
		s.log.Warn("sending DHCP reply failed", "to", ex.dst, "type", ex.rtype.String(), "err", err)
		return
	}
	s.sent(ex)
}

// sent logs and records a reply that has left.
func (s *Server) sent(ex *exchange) {
	rt := ex.rtype
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("dhcp reply", "type", rt.String(), "mac", ex.mac.Colon(), "ip", ex.lease.IP, "to", ex.dst, "detail", ex.detail)
	}
	if rt != dhcpv4.MessageTypeOffer {
		s.record(ex, inventory.Kind(rt.String()), rt != dhcpv4.MessageTypeNak, ex.lease.IP, ex.detail)
	}
}

// record sends an inventory event for phones (and reserved MACs); other
// clients are not phones and would only crowd the inventory.
func (s *Server) record(ex *exchange, kind inventory.Kind, ok bool, ip netip.Addr, detail string) {
	if !ex.isPhone && ex.reserved == nil {
		return
	}
	s.inv.Record(inventory.Observation{
		MAC: ex.mac, Model: ex.model, Hostname: ex.hostname, IP: ip,
		Event: inventory.Event{Step: inventory.StepDHCP, Kind: kind, OK: ok, Detail: detail},
	})
}

// admit drops what we must not answer and identifies the client.
func (s *Server) admit(ex *exchange) bool {
	req, o := ex.req, ex.opts
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return false
	}
	ex.mtype = req.MessageType()
	if ex.mtype == dhcpv4.MessageTypeNone {
		return false // plain BOOTP is not served
	}
	// RFC 2131 §4.2: a client that sends option 61 is identified by it, so
	// its chaddr may be anything (all zeros, another hardware type). Without
	// option 61 chaddr is the only identity: an all-zero or non-Ethernet
	// chaddr would make every such client the same client (one lease shared
	// by strangers) and gives no address to answer, so those are dropped.
	ex.clientID = req.Options.Get(dhcpv4.OptionClientIdentifier)
	var mac phone.MAC
	if req.HWType == iana.HWTypeEthernet && len(req.ClientHWAddr) == 6 {
		mac, _ = phone.FromHardwareAddr(req.ClientHWAddr)
	}
	if mac.IsZero() && len(ex.clientID) == 0 {
		s.log.Debug("ignoring a client with neither an Ethernet chaddr nor a client identifier", "chaddr", req.ClientHWAddr, "htype", req.HWType)
		return false
	}
	if req.TransactionID == s.scoutXID && net.HardwareAddr(mac[:]).String() == s.scoutMAC.String() {
		return false // our own search for other servers
	}
	ex.mac = mac
	ex.key = keyFor(mac, ex.clientID)
	ex.hostname = sanitize(req.HostName())
	if m, ok := phone.ModelFromVendorClass(req.ClassIdentifier()); ok {
		ex.model = m
	}
	// The inventory is keyed by MAC: a client without one is served but not
	// recorded there.
	ex.isPhone = !mac.IsZero() && (ex.model != "" || mac.IsSnom())
	iface := o.Interface
	if ex.link != nil {
		iface = ex.link.iface
	}
	sub, why, unserved := o.subnetFor(relayedLink(req), addrOf(req.ClientIPAddr), iface)
	switch {
	case unserved:
		// Expected on a LAN whose router serves its own clients: counted,
		// not warned about.
		s.notServed.Add(1)
		s.log.Debug("DHCP request ignored", "reason", why, "client", ex.mac.Colon())
		return false
	case sub == nil:
		s.dropNoSubnet(ex, why)
		return false
	}
	ex.opts, o = sub, sub
	for i := range o.Reservations {
		if !mac.IsZero() && o.Reservations[i].MAC == mac {
			ex.reserved = &o.Reservations[i]
		}
	}
	if o.Serve == ServePhones && !ex.isPhone && ex.reserved == nil {
		s.log.Debug("ignoring a client that is not a phone (serve = phones)", "mac", mac.Colon(), "vendor_class", req.ClassIdentifier())
		return false
	}
	if ex.mtype == dhcpv4.MessageTypeRequest {
		if sid := optAddr(req, dhcpv4.OptionServerIdentifier); sid.IsValid() && sid != o.ServerIP {
			s.noteOtherServer(sid)
		}
	}
	if ex.mtype != dhcpv4.MessageTypeDecline { // decline records its own, failed, event
		s.record(ex, inventory.Kind(ex.mtype.String()), true, addrOf(req.ClientIPAddr), ex.mtype.String())
	}
	return true
}

// decide runs the lease logic for the message type and builds the reply.
func (s *Server) decide(ex *exchange) bool {
	switch ex.mtype {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(ex)
	case dhcpv4.MessageTypeRequest:
		return s.request(ex)
	case dhcpv4.MessageTypeDecline:
		s.decline(ex)
	case dhcpv4.MessageTypeRelease:
		s.release(ex)
	case dhcpv4.MessageTypeInform:
		if !addrOf(ex.req.ClientIPAddr).IsValid() {
			// RFC 2131 Table 5: an INFORM carries the client's address in
			// ciaddr, and §4.3.5 sends the ACK there; without it there is
			// nowhere to answer (Kea drops it too).
			s.log.Debug("ignoring DHCPINFORM without ciaddr", "mac", ex.mac.Colon())
			return false
		}
		ex.resp = s.reply(ex, dhcpv4.MessageTypeAck)
		ex.detail = "INFORM answered with options only"
		return true
	}
	return false
}

const maxProbeTries = 3

func (s *Server) discover(ex *exchange) bool {
	o := ex.opts
	requested := optAddr(ex.req, dhcpv4.OptionRequestedIPAddress)
	for try := 0; try < maxProbeTries; try++ {
		var ip netip.Addr
		fresh, busy, ok := true, false, true
		if ex.probeIP.IsValid() { // rerun on the probe goroutine: the address is held
			ip, ex.probeIP = ex.probeIP, netip.Addr{}
		} else {
			s.mu.Lock()
			if s.opts.Load() != ex.root {
				// A reload came between: o.scope may name a pool range that
				// is gone. The client's retransmission meets the new config.
				s.mu.Unlock()
				return false
			}
			ip, fresh, busy, ok = s.pool.candidate(ex.key, ex.mac, ex.reserved, requested, ex.now, o.scope)
			if ok && !busy {
				s.pool.hold(ex.key, ip, ex.now.Add(o.OfferTime), fresh && s.prober != nil)
			}
			s.mu.Unlock()
			if busy {
				return false // a retransmission while its probe runs: that OFFER follows
			}
			if !ok {
				s.poolExhausted(ex)
				return false
			}
		}
		if fresh && s.prober != nil {
			if !ex.mayBlock {
				// Probe on a goroutine of its own so the reader goes on with
				// other clients; the hold keeps the address for this client.
				ex.mayBlock, ex.probeIP, ex.out = true, ip, nil
				go s.runChain(ex, stageLease)
				return false
			}
			if s.prober.inUse(ip, o.ConflictProbe) {
				s.log.Warn("address answers ping but has no lease; taking it out of the pool", "ip", ip, "for", o.DeclineTime)
				s.mu.Lock()
				l := s.pool.quarantine(ip, s.now().Add(o.DeclineTime))
				s.mu.Unlock()
				s.store.commit(l, nil)
				requested = netip.Addr{}
				continue
			}
			s.mu.Lock()
			s.pool.hold(ex.key, ip, s.now().Add(o.OfferTime), false)
			s.mu.Unlock()
		}
		ex.resp = s.reply(ex, dhcpv4.MessageTypeOffer)
		ex.resp.YourIPAddr = ip.AsSlice()
		ex.lease = Lease{IP: ip} // an OFFER is not recorded: no detail, the debug line has the address
		return true
	}
	s.log.Warn("no conflict-free address found after probing; client must retry", "mac", ex.mac.Colon())
	return false
}

// relayedLink is the address that names a relayed request's link: the
// subnet selection option 118 (RFC 3011) or the link selection sub-option
// of option 82 (RFC 3527) when the relay sends one, else giaddr. Invalid
// for a request that is not relayed: a client's own option 118 is not
// trusted to move it to another subnet than its interface's.
func relayedLink(req *dhcpv4.DHCPv4) netip.Addr {
	gi := addrOf(req.GatewayIPAddr)
	if !gi.IsValid() {
		return gi
	}
	if a := addrOf(req.Options.Get(dhcpv4.OptionSubnetSelection)); a.IsValid() {
		return a
	}
	if rai := req.RelayAgentInfo(); rai != nil {
		if a := addrOf(rai.Get(dhcpv4.LinkSelectionSubOption)); a.IsValid() {
			return a
		}
	}
	return gi
}

// dropNoSubnet counts a request no subnet served here matches, and says
// why in the log at most every 10 seconds.
func (s *Server) dropNoSubnet(ex *exchange, why string) {
	s.noSubnet.Add(1)
	now := s.now().Unix()
	if last := s.lastNoSubnet.Load(); now-last >= 10 && s.lastNoSubnet.CompareAndSwap(last, now) {
		s.log.Warn("DHCP request dropped: no subnet served here matches it; add its network to [[dhcp.subnets]] if it should be served",
			"reason", why, "client", ex.mac.Colon(), "dropped_total", s.noSubnet.Load())
	}
}

// NotServed is the number of requests ignored because they are for the
// LAN subnet, which [dhcp] without a pool leaves to another server.
func (s *Server) NotServed() uint64 { return s.notServed.Load() }

// NoSubnet is the number of requests dropped because no subnet served
// here matched them (a relay's giaddr, or the interface they came in on).
func (s *Server) NoSubnet() uint64 { return s.noSubnet.Load() }

func (s *Server) poolExhausted(ex *exchange) {
	now := s.now().Unix()
	if last := s.lastExhausted.Load(); now-last >= 10 && s.lastExhausted.CompareAndSwap(last, now) {
		o := ex.opts
		s.log.Warn("DHCP pool exhausted: no free address; enlarge [dhcp] pool or shorten lease_time",
			"pool", o.poolText(), "client", ex.mac.Colon())
	}
	s.record(ex, inventory.KindNak, false, netip.Addr{}, "no free address in the pool")
}

func (s *Server) request(ex *exchange) bool {
	req, o := ex.req, ex.opts
	if sid := optAddr(req, dhcpv4.OptionServerIdentifier); sid.IsValid() && sid != o.ServerIP {
		// SELECTING another server's offer: release ours, stay silent.
		s.mu.Lock()
		s.pool.dropOffer(ex.key)
		s.mu.Unlock()
		return false
	}
	ip := optAddr(req, dhcpv4.OptionRequestedIPAddress)
	// INIT-REBOOT (RFC 2131 §4.3.2): no server identifier, no ciaddr, the
	// address the client remembers in option 50.
	initReboot := ip.IsValid() && !addrOf(req.ClientIPAddr).IsValid() && !optAddr(req, dhcpv4.OptionServerIdentifier).IsValid()
	if !ip.IsValid() {
		ip = addrOf(req.ClientIPAddr)
	}
	if !ip.IsValid() {
		return false // neither option 50 nor ciaddr: malformed
	}
	if !o.Subnet.Contains(ip) {
		return s.nak(ex, ip, "address "+ip.String()+" is not on this network")
	}
	s.mu.Lock()
	reason := ""
	if initReboot && !o.Authoritative && ex.reserved == nil {
		cur, known := s.pool.byClient[ex.key]
		off, offered := s.pool.offers[ex.key]
		switch {
		case !known && !offered:
			// No record of the client: it may be another server's. RFC
			// 2131 §4.3.2 says MUST remain silent, which is what lets
			// servers that know nothing of each other share a link.
			s.mu.Unlock()
			s.log.Debug("ignoring INIT-REBOOT from a client we have no record of", "mac", ex.mac.Colon(), "requested", ip)
			return false
		case (known && cur.IP == ip) || (offered && off.ip == ip):
		default:
			reason = "address " + ip.String() + " is not this client's lease"
		}
	}
	switch {
	case reason != "":
	case ex.reserved != nil && ip != ex.reserved.IP:
		reason = "this client has the reservation " + ex.reserved.IP.String()
	case ex.reserved != nil:
	case !s.pool.inPool(ip) && !s.ownsActive(ex, ip):
		reason = "address " + ip.String() + " is not in the pool"
	case !s.pool.freeFor(ip, ex.key, ex.mac, ex.now):
		reason = "address " + ip.String() + " belongs to another client"
	}
	if reason != "" {
		s.pool.dropOffer(ex.key)
		s.mu.Unlock()
		return s.nak(ex, ip, reason)
	}
	// A client that comes back within the first quarter of its lease (a
	// reboot, a retransmission, a chatty client) gets the rest of the lease
	// already on disk: nothing to write, and the ACK still promises only what
	// is durable. Kea's cache-threshold does the same.
	if cur, ok := s.pool.byClient[ex.key]; ok && cur.IP == ip && cur.State == StateBound &&
		cur.Hostname == ex.hostname && cur.Expiry.Sub(ex.now) > o.LeaseTime*3/4 {
		s.pool.dropOffer(ex.key)
		l := *cur
		s.mu.Unlock()
		ex.lease, ex.leaseTime = l, l.Expiry.Sub(ex.now).Truncate(time.Second)
		ex.resp = s.reply(ex, dhcpv4.MessageTypeAck)
		ex.resp.YourIPAddr = ip.AsSlice()
		ex.detail = ackDetail(ip, ex.leaseTime.String(), " (unchanged)")
		return true
	}
	l, moved := s.pool.bind(ex.key, Lease{
		IP: ip, MAC: ex.mac, ClientID: hex.EncodeToString(ex.clientID), Hostname: ex.hostname,
		Expiry: ex.now.Add(o.LeaseTime).Truncate(time.Second), State: StateBound,
	})
	s.mu.Unlock()
	if moved != nil {
		s.store.commit(*moved, nil)
	}
	ex.lease, ex.commit, ex.leaseTime = l, true, o.LeaseTime
	ex.resp = s.reply(ex, dhcpv4.MessageTypeAck)
	ex.resp.YourIPAddr = ip.AsSlice()
	ex.detail = ackDetail(ip, o.leaseTimes.text, "")
	return true
}

// ackDetail is an ACK's inventory detail, "ACK 10.0.0.5 lease 1h0m0s",
// built in one allocation: every fresh lease records one.
func ackDetail(ip netip.Addr, lease, suffix string) string {
	var a [64]byte
	b := append(a[:0], "ACK "...)
	b = ip.AppendTo(b)
	b = append(b, " lease "...)
	b = append(b, lease...)
	return string(append(b, suffix...))
}

func (s *Server) ownsActive(ex *exchange, ip netip.Addr) bool {
	l, ok := s.pool.byClient[ex.key]
	return ok && l.IP == ip && l.Active(ex.now)
}

func (s *Server) nak(ex *exchange, ip netip.Addr, why string) bool {
	r := s.reply(ex, dhcpv4.MessageTypeNak)
	r.UpdateOption(dhcpv4.OptMessage(why))
	if addrOf(ex.req.GatewayIPAddr).IsValid() {
		r.SetBroadcast() // so the relay broadcasts it
	}
	ex.resp = r
	ex.lease = Lease{IP: ip}
	ex.detail = "NAK: " + why
	return true
}

func (s *Server) decline(ex *exchange) {
	ip := optAddr(ex.req, dhcpv4.OptionRequestedIPAddress)
	o := ex.opts
	s.mu.Lock()
	l, ok := s.pool.byClient[ex.key]
	if !ok || l.IP != ip {
		if k, offered := s.pool.offered[ip]; !offered || k != ex.key {
			s.mu.Unlock()
			return
		}
	}
	q := s.pool.quarantine(ip, ex.now.Add(o.DeclineTime))
	s.mu.Unlock()
	s.store.commit(q, nil)
	s.log.Warn("client declined its address (another host uses it); address quarantined", "ip", ip, "mac", ex.mac.Colon(), "for", o.DeclineTime)
	s.record(ex, inventory.KindDecline, false, ip, "declined "+ip.String())
}

func (s *Server) release(ex *exchange) {
	ip := addrOf(ex.req.ClientIPAddr)
	s.mu.Lock()
	l, ok := s.pool.byClient[ex.key]
	if !ok || l.IP != ip || l.State != StateBound {
		s.mu.Unlock()
		return
	}
	l.State, l.Expiry = StateReleased, ex.now.Truncate(time.Second)
	rel := *l
	s.mu.Unlock()
	s.store.commit(rel, nil)
}

// reply starts a reply with what every reply carries. It is what
// dhcpv4.NewReplyFromRequest builds, without drawing a random transaction ID
// that is overwritten anyway (a tenth of the CPU per exchange).
func (s *Server) reply(ex *exchange, t dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	req := ex.req
	r := &dhcpv4.DHCPv4{
		OpCode: dhcpv4.OpcodeBootReply, HWType: req.HWType, TransactionID: req.TransactionID,
		Flags: req.Flags, ClientHWAddr: req.ClientHWAddr, GatewayIPAddr: req.GatewayIPAddr,
		ClientIPAddr: net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero,
		Options: replyOptions(len(ex.opts.encoded)),
	}
	// RFC 3046 relay agent information, RFC 6842 client identifier and
	// RFC 3011 subnet selection echo. Options are set straight into the map
	// (no Option values to build): the bytes are shared, and ToBytes only
	// reads them.
	for _, c := range []uint8{82, 61, 118} {
		if v, ok := req.Options[c]; ok {
			r.Options[c] = v
		}
	}
	ex.rtype = t
	r.Options[53] = []byte{byte(t)}
	r.Options[54] = ex.opts.serverID
	return r
}

// addOptions fills the configuration options into OFFER and ACK.
func (s *Server) addOptions(ex *exchange) bool {
	r, o := ex.resp, ex.opts
	if r == nil || ex.rtype == dhcpv4.MessageTypeNak {
		return true
	}
	if ex.mtype != dhcpv4.MessageTypeInform {
		t := o.leaseTimes // an OFFER, a fresh ACK
		if ex.leaseTime != 0 && ex.leaseTime != t.d {
			t = encodeLeaseTimes(ex.leaseTime) // the rest of a lease on disk
		}
		r.Options[uint8(dhcpv4.OptionIPAddressLeaseTime)] = t.lease
		r.Options[uint8(dhcpv4.OptionRenewTimeValue)] = t.renew
		r.Options[uint8(dhcpv4.OptionRebindingTimeValue)] = t.rebind
	}
	if ex.reserved != nil && ex.reserved.Hostname != "" {
		r.UpdateOption(dhcpv4.OptHostName(ex.reserved.Hostname))
	}
	// Encoded once per configuration (encodeOptions): the reply shares the
	// bytes, which ToBytes only reads.
	for _, x := range o.encoded {
		if x.wanted(ex) {
			r.Options[uint8(x.code.Code())] = x.value
		}
	}
	return true
}

// leaseTimes is a lease's time options, encoded: 51 the lease, 58 T1 at
// half of it, 59 T2 at seven eighths (RFC 2131 §4.4.5).
type leaseTimes struct {
	d                    time.Duration
	text                 string // d.String(), for the ACK's detail
	lease, renew, rebind []byte
}

func encodeLeaseTimes(d time.Duration) leaseTimes {
	return leaseTimes{d: d, text: d.String(),
		lease:  dhcpv4.OptIPAddressLeaseTime(d).Value.ToBytes(),
		renew:  dhcpv4.OptRenewTimeValue(d / 2).Value.ToBytes(),
		rebind: dhcpv4.OptRebindingTimeValue(d * 7 / 8).Value.ToBytes(),
	}
}

// sendRule says which replies carry an option.
type sendRule uint8

const (
	sendAlways           sendRule = iota // every OFFER and ACK
	sendRequested                        // when the client lists it in option 55
	sendPhoneOrRequested                 // forced to phones (dnsmasq's dhcp-option-force), else on request
	sendPhone                            // to phones only
)

func (x extraOption) wanted(ex *exchange) bool {
	switch x.when {
	case sendAlways:
		return true
	case sendPhone:
		return ex.isPhone
	case sendPhoneOrRequested:
		if ex.isPhone {
			return true
		}
	}
	return ex.req.IsOptionRequested(x.code)
}

// encodeOptions turns the configuration's options into wire bytes once, in
// the order addOptions used to build them, followed by the extra options.
func encodeOptions(o *Options, extra []extraOption) []extraOption {
	var out []extraOption
	add := func(c dhcpv4.OptionCode, v []byte, when sendRule) {
		out = append(out, extraOption{code: c, value: v, when: when})
	}
	add(dhcpv4.OptionSubnetMask, net.CIDRMask(o.Subnet.Bits(), 32), sendAlways)
	if o.Router.IsValid() {
		add(dhcpv4.OptionRouter, o.Router.AsSlice(), sendAlways)
	}
	if len(o.DNS) > 0 {
		add(dhcpv4.OptionDomainNameServer, dhcpv4.IPs(ips(o.DNS)).ToBytes(), sendAlways)
	}
	if o.Domain != "" {
		add(dhcpv4.OptionDomainName, []byte(o.Domain), sendAlways)
	}
	if len(o.NTP) > 0 {
		add(dhcpv4.OptionNTPServers, dhcpv4.IPs(ips(o.NTP)).ToBytes(), sendAlways)
	}
	if o.TimeOffset != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(int32(o.TimeOffset.Seconds())))
		add(dhcpv4.OptionTimeOffset, b[:], sendAlways)
	}
	if o.UpdateServer != "" {
		add(dhcpv4.OptionTFTPServerName, []byte(o.UpdateServer), sendPhoneOrRequested)
	}
	if o.UpdateFilename != "" {
		add(dhcpv4.OptionBootfileName, []byte(o.UpdateFilename), sendPhoneOrRequested)
	}
	if o.VoiceVLAN > 0 {
		add(optVoiceVLAN, []byte(strconv.Itoa(o.VoiceVLAN)), sendPhone)
		add(optVoicePriority, []byte(strconv.Itoa(o.VoicePriority)), sendPhone)
	}
	if o.VendorOptions {
		if v := snomVendorOptions(o); len(v) > 0 {
			add(dhcpv4.OptionVendorSpecificInformation, v, sendPhone)
		}
	}
	return append(out, extra...)
}

// Snom's voice VLAN options (docs §2.2).
const (
	optVoiceVLAN     = dhcpv4.GenericOptionCode(132)
	optVoicePriority = dhcpv4.GenericOptionCode(133)
)

// snomVendorOptions encodes option 43 the way Snom documents it: sub-options
// reuse the option codes 66, 67, 132, 133, and every value is ASCII followed
// by a NUL that the length byte counts.
func snomVendorOptions(o *Options) []byte {
	var b []byte
	add := func(code byte, v string) {
		if v == "" || len(v) > 254 {
			return
		}
		b = append(b, code, byte(len(v)+1))
		b = append(b, v...)
		b = append(b, 0)
	}
	add(66, o.UpdateServer)
	add(67, o.UpdateFilename)
	if o.VoiceVLAN > 0 {
		add(132, strconv.Itoa(o.VoiceVLAN))
		add(133, strconv.Itoa(o.VoicePriority))
	}
	if len(b) > 255 {
		return nil // would need RFC 3396 splitting, which phones are not known to reassemble
	}
	return b
}

// makeDurable hands the ACK to the lease writer, which sends it once the
// lease is fsynced (group commit). A lease that cannot be stored gets no ACK.
func (s *Server) makeDurable(ex *exchange) bool {
	if !ex.commit {
		return true
	}
	s.encode(ex)
	s.store.commit(ex.lease, func(err error) {
		if err != nil {
			s.record(ex, inventory.KindNak, false, ex.lease.IP, "lease not stored: "+err.Error())
			return
		}
		// On the writer goroutine: the ACK, encoded already, joins the
		// group the writer hands to the releaser once every callback of
		// this group commit has run (batch.go).
		ex.out = s.writerOut
		s.deliver(ex)
	})
	return false
}

// route is where a reply goes: an IP address and port, and when hw is set
// that MAC on the interface (the client has no address to ARP for yet);
// via is the interface's link (nil: the LAN's), src our address there.
type route struct {
	to  netip.AddrPort
	hw  net.HardwareAddr
	via *link
	src netip.Addr
}

func (r route) String() string {
	if r.hw != nil {
		return r.to.String() + " at " + r.hw.String()
	}
	return r.to.String()
}

// replyDestination is RFC 2131 §4.1 reply routing, all in one place:
//   - relayed (giaddr set): to the relay's server port; it forwards the reply
//   - NAK without relay: broadcast, the client may have no usable address
//   - ciaddr set (RENEWING, REBINDING, INFORM): unicast to ciaddr
//   - broadcast flag clear, an Ethernet chaddr and yiaddr: unicast to yiaddr
//     at chaddr, when l2 (a packet socket on the interface) is available
//   - otherwise (broadcast flag set, no usable chaddr, no packet socket):
//     broadcast on the interface
func replyDestination(req, reply *dhcpv4.DHCPv4, serverPort int, l2 bool) route {
	clientPort := uint16(serverPort + 1)
	bcast := route{to: netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), clientPort)}
	if gi := addrOf(req.GatewayIPAddr); gi.IsValid() {
		return route{to: netip.AddrPortFrom(gi, uint16(serverPort))}
	}
	if reply.MessageType() == dhcpv4.MessageTypeNak {
		return bcast
	}
	if ci := addrOf(req.ClientIPAddr); ci.IsValid() {
		return route{to: netip.AddrPortFrom(ci, clientPort)}
	}
	yi := addrOf(reply.YourIPAddr)
	if l2 && !req.IsBroadcast() && yi.IsValid() && req.HWType == iana.HWTypeEthernet && len(req.ClientHWAddr) == 6 {
		if mac, _ := phone.FromHardwareAddr(req.ClientHWAddr); !mac.IsZero() && req.ClientHWAddr[0]&1 == 0 {
			return route{to: netip.AddrPortFrom(yi, clientPort), hw: req.ClientHWAddr}
		}
	}
	return bcast
}

// optAddr is an address option of a request (50, 54) as the library's
// getters read it (exactly four bytes, else none), through addrOf, without
// the allocations of parsing it into a net.IP.
func optAddr(req *dhcpv4.DHCPv4, c dhcpv4.OptionCode) netip.Addr {
	v := req.Options.Get(c)
	if len(v) != net.IPv4len {
		return netip.Addr{}
	}
	return addrOf(net.IP(v))
}

// addrOf converts a packet field; unspecified and broadcast become invalid.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}
	}
	return a
}

func ips(list []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(list))
	for _, a := range list {
		out = append(out, a.AsSlice())
	}
	return out
}

// sanitize keeps client-supplied names printable and short for logs and files.
func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func sortLeases(l []Lease) {
	sort.Slice(l, func(i, j int) bool { return l[i].IP.Less(l[j].IP) })
}

// noteOtherServer warns once per server that a client is talking to another
// DHCP server on our segment (passive detection while serving).
func (s *Server) noteOtherServer(sid netip.Addr) {
	s.foreignMu.Lock()
	seen := s.foreign[sid]
	s.foreign[sid] = true
	s.foreignMu.Unlock()
	if !seen {
		s.log.Warn("a client is requesting from another DHCP server on this network", "server", sid)
	}
}
