package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

var (
	a4 = netip.MustParseAddr
	p4 = netip.MustParsePrefix
)

// vlanSubnet is a local subnet on eth0.20; relayedSubnet is reached
// through a relay at 10.30.0.1.
func vlanSubnet() Options {
	return Options{
		Interface: "eth0.20", ServerIP: a4("10.20.0.1"), Subnet: p4("10.20.0.0/24"),
		Pool: "10.20.0.100-10.20.0.199", Router: a4("10.20.0.254"), DNS: []netip.Addr{a4("10.20.0.53")},
		UpdateServer: "http://10.20.0.1:8080/", VoiceVLAN: 20,
	}
}

func relayedSubnet() Options {
	return Options{
		ServerIP: a4("10.77.0.1"), Subnet: p4("10.30.0.0/24"),
		Pool: "10.30.0.100-10.30.0.199", Router: a4("10.30.0.1"), DNS: []netip.Addr{a4("10.30.0.53")},
		Domain: "site-b.lan", UpdateServer: "http://10.77.0.1:8080/b/",
		Reservations: []Reservation{{MAC: phone.MAC{0, 4, 0x13, 0x30, 0, 9}, IP: a4("10.30.0.9")}},
	}
}

func withSubnets(o *Options) {
	o.Interface = "eth0"
	o.Subnets = []Options{vlanSubnet(), relayedSubnet()}
}

func TestSubnetFor(t *testing.T) {
	p, err := Prepare(func() Options { o := baseOptions(t.TempDir()); withSubnets(&o); return o }())
	if err != nil {
		t.Fatal(err)
	}
	o := p.Options()
	relaysOnly := o
	relaysOnly.ServerIP = a4("10.1.0.1") // the LAN subnet does not hold our address
	pn, err := Prepare(func() Options { o := noLANPool(t.TempDir()); withSubnets(&o); return o }())
	if err != nil {
		t.Fatal(err)
	}
	noPool := pn.Options() // [dhcp] without a pool: the LAN subnet is not served
	tests := []struct {
		name           string
		o              *Options
		giaddr, ciaddr string
		iface          string
		want           string // the chosen subnet's network, or a part of the reason
	}{
		{"direct on the LAN", &o, "", "", "eth0", "10.77.0.0/24"},
		{"direct on the VLAN", &o, "", "", "eth0.20", "10.20.0.0/24"},
		{"relayed to the relayed subnet", &o, "10.30.0.1", "", "eth0", "10.30.0.0/24"},
		{"relayed, giaddr anywhere in it", &o, "10.30.0.77", "", "eth0.20", "10.30.0.0/24"},
		{"relayed to the VLAN's subnet", &o, "10.20.0.254", "", "eth0", "10.20.0.0/24"},
		{"relayed to the LAN's subnet", &o, "10.77.0.2", "", "eth0", "10.77.0.0/24"},
		{"relayed from nowhere served", &o, "192.168.9.1", "", "eth0", "in no subnet served here"},
		{"direct on another interface", &o, "", "", "eth1", "serves no subnet"},
		{"a relayed subnet takes no direct request", &o, "", "", "", "serves no subnet"},
		{"LAN subnet for relays only", &relaysOnly, "", "", "eth0", "relays only"},
		{"renewing a relayed lease, unicast without the relay", &o, "", "10.30.0.150", "eth0", "10.30.0.0/24"},
		{"renewing on the VLAN", &o, "", "10.20.0.150", "eth0.20", "10.20.0.0/24"},
		{"giaddr wins over ciaddr", &o, "10.30.0.1", "10.20.0.150", "eth0", "10.30.0.0/24"},
		{"ciaddr in no subnet", &o, "", "192.168.9.9", "eth0", "in no subnet served here"},
		{"renewing into a subnet for relays only", &relaysOnly, "", "10.77.0.150", "eth0", "10.77.0.0/24"},
		{"no LAN pool: direct on the LAN", &noPool, "", "", "eth0", "arrived on eth0, whose subnet 10.77.0.0/24 is not served ([dhcp] has no pool)"},
		{"no LAN pool: direct on the VLAN", &noPool, "", "", "eth0.20", "10.20.0.0/24"},
		{"no LAN pool: relayed", &noPool, "10.30.0.1", "", "eth0", "10.30.0.0/24"},
		{"no LAN pool: relayed from the LAN's subnet", &noPool, "10.77.0.2", "", "eth0", "whose subnet 10.77.0.0/24 is not served"},
		{"no LAN pool: renewing a relayed lease", &noPool, "", "10.30.0.150", "eth0", "10.30.0.0/24"},
		{"no LAN pool: ciaddr on the LAN", &noPool, "", "10.77.0.150", "eth0", "(ciaddr), whose subnet 10.77.0.0/24 is not served"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gi, ci netip.Addr
			if tt.giaddr != "" {
				gi = a4(tt.giaddr)
			}
			if tt.ciaddr != "" {
				ci = a4(tt.ciaddr)
			}
			sn, why, unserved := tt.o.subnetFor(gi, ci, tt.iface)
			if wantUnserved := strings.Contains(tt.want, "not served"); unserved != wantUnserved {
				t.Errorf("subnetFor(%v, %v, %q): unserved = %v, want %v", gi, ci, tt.iface, unserved, wantUnserved)
			}
			got := why
			if sn != nil {
				got = sn.Subnet.String()
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("subnetFor(%v, %v, %q) = %q, want %q", gi, ci, tt.iface, got, tt.want)
			}
		})
	}
}

func TestPrepareSubnets(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(subs []Options)
		key    string // the key of the error, "" for none
		msg    string
	}{
		{"ok", func([]Options) {}, "", ""},
		{"pool outside its network", func(s []Options) { s[0].Pool = "10.21.0.100-10.21.0.199" }, "subnets[0].pool", "outside its network 10.20.0.0/24"},
		{"pool missing", func(s []Options) { s[1].Pool = "" }, "subnets[1].pool", "needs a pool"},
		{"router outside", func(s []Options) { s[1].Router = a4("10.31.0.1") }, "subnets[1].router", "outside its network"},
		{"reservation outside", func(s []Options) { s[1].Reservations[0].IP = a4("10.20.0.9") }, "subnets[1].reservations[0].ip", "outside its network"},
		{"network with host bits", func(s []Options) { s[1].Subnet = p4("10.30.0.7/24") }, "subnets[1].network", "write the network as 10.30.0.0/24"},
		{"network too big", func(s []Options) { s[1].Subnet = p4("10.0.0.0/7") }, "subnets[1].network", "between /8 and /30"},
		{"overlaps the LAN", func(s []Options) {
			s[1].Subnet, s[1].Pool, s[1].Router, s[1].Reservations = p4("10.77.0.0/16"), "10.77.5.1-10.77.5.9", netip.Addr{}, nil
		}, "subnets[1].network", "overlaps 10.77.0.0/24 of the primary subnet"},
		{"overlaps another subnet", func(s []Options) {
			s[1].Subnet, s[1].Pool, s[1].Router, s[1].Reservations = p4("10.20.0.128/25"), "10.20.0.130-10.20.0.140", netip.Addr{}, nil
		}, "subnets[1].network", "overlaps 10.20.0.0/24 of subnets[0]"},
		{"same interface twice", func(s []Options) {
			s[1].Interface = "eth0.20"
		}, "subnets[1].interface", `"eth0.20" already serves subnets[0]`},
		{"the LAN's interface", func(s []Options) { s[0].Interface = "eth0" }, "subnets[0].interface", "already serves the primary subnet"},
		{"server-wide option", func(s []Options) { s[0].Serve = ServePhones }, "subnets[0]", "server-wide"},
		{"bad extra option", func(s []Options) { s[1].ExtraOptions = []ExtraOption{{Code: 66, Type: "string", Value: "x"}} }, "subnets[1].options[0].code", "update_server"},
		{"vlan", func(s []Options) { s[0].VoiceVLAN = 4095 }, "subnets[0].voice_vlan", "VLAN ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOptions(t.TempDir())
			withSubnets(&o)
			tt.mutate(o.Subnets)
			_, err := Prepare(o)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				return
			}
			for _, fe := range field.List(err) {
				if fe.Key == tt.key && strings.Contains(fe.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("err = %v, want %s: ...%s...", err, tt.key, tt.msg)
		})
	}
}

// noLANPool is baseOptions without a pool of its own.
func noLANPool(dir string) Options {
	o := baseOptions(dir)
	o.PoolStart, o.PoolEnd = netip.Addr{}, netip.Addr{}
	return o
}

// TestPrepareNoLANPool: [dhcp] may leave its pool out when it has subnets
// (the LAN is then not served), not otherwise, and then has no reservations.
func TestPrepareNoLANPool(t *testing.T) {
	res := []Reservation{{MAC: phone.MAC{0, 4, 0x13, 0x77, 0, 9}, IP: a4("10.77.0.9")}}
	tests := []struct {
		name   string
		mutate func(o *Options)
		key    string // the key of the error, "" for none
		msg    string
	}{
		{"subnets", withSubnets, "", ""},
		{"a relayed subnet alone", func(o *Options) { o.Subnets = []Options{relayedSubnet()} }, "", ""},
		{"no subnets", func(*Options) {}, "pool", "DHCP needs a pool to serve from"},
		{"no subnets, the hint", func(*Options) {}, "pool", "or leave it out and serve only [[dhcp.subnets]]"},
		{"reservations", func(o *Options) { withSubnets(o); o.Reservations = res }, "reservations[0]", "[dhcp] has no pool, so the LAN subnet is not served"},
		{"half a range", func(o *Options) { withSubnets(o); o.PoolStart = a4("10.77.0.100") }, "pool", "not an ascending IPv4 range"},
		{"an entry still needs one", func(o *Options) { withSubnets(o); o.Subnets[0].Pool = "" }, "subnets[0].pool", "DHCP needs a pool"},
		{"away from the LAN", func(o *Options) { withSubnets(o); o.ServerIP, o.Subnet = netip.Addr{}, netip.Prefix{} }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := noLANPool(t.TempDir())
			tt.mutate(&o)
			p, err := Prepare(o)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				if po := p.Options(); po.hasPool() {
					t.Errorf("the primary got a pool %v-%v", po.PoolStart, po.PoolEnd)
				}
				return
			}
			for _, fe := range field.List(err) {
				if fe.Key == tt.key && strings.Contains(fe.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("err = %v, want %s: ...%s...", err, tt.key, tt.msg)
		})
	}
}

// TestNoLANPoolDORA: with no pool in [dhcp], a relayed DORA is served
// from its subnet with the LAN address as server identifier, a DISCOVER
// on the LAN is dropped and counted, and the usage counts the subnets'
// pools only.
func TestNoLANPoolDORA(t *testing.T) {
	o := noLANPool(t.TempDir())
	withSubnets(&o)
	ts := startTestServer(t, o)
	gi := dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1))
	off := ts.do(discover("00:04:13:30:00:01", gi))
	if off == nil || off.msg.MessageType() != dhcpv4.MessageTypeOffer || !p4("10.30.0.0/24").Contains(ipOf(off.msg)) {
		t.Fatalf("relayed DISCOVER: %+v", off)
	}
	ack := ts.do(requestFor(off.msg, gi))
	if ack == nil || ack.msg.MessageType() != dhcpv4.MessageTypeAck || ack.to != netip.MustParseAddrPort("10.30.0.1:67") {
		t.Fatalf("relayed REQUEST: %+v", ack)
	}
	if got := addrOf(ack.msg.ServerIdentifier()); got != a4("10.77.0.1") {
		t.Errorf("option 54 = %v, want the LAN address", got)
	}
	for _, req := range []*dhcpv4.DHCPv4{
		discover("00:04:13:77:00:01"),
		discover("00:04:13:77:00:02", dhcpv4.WithGatewayIP(net.IPv4(10, 77, 0, 2))),
	} {
		if r := ts.do(req); r != nil {
			t.Errorf("a request for the LAN subnet got %v", r.msg.MessageType())
		}
	}
	if n := ts.NotServed(); n != 2 {
		t.Errorf("NotServed = %d, want 2", n)
	}
	if n := ts.NoSubnet(); n != 0 {
		t.Errorf("NoSubnet = %d, want 0: the LAN's requests are not a misconfiguration", n)
	}
	if used, total := ts.PoolUsage(); used != 1 || total != 200 {
		t.Errorf("PoolUsage = %d of %d, want 1 of the subnets' 200", used, total)
	}
	want := []SubnetUsage{{p4("10.20.0.0/24"), false, 0, 100}, {p4("10.30.0.0/24"), false, 1, 100}}
	if got := ts.SubnetUsage(); !slices.Equal(got, want) {
		t.Errorf("SubnetUsage = %v, want %v (no entry for the LAN)", got, want)
	}
}

// TestSubnetUsage: each subnet's pool is counted apart, the primary first.
func TestSubnetUsage(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	ts.lease("00:04:13:77:00:01")
	gi := dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1))
	ts.lease("00:04:13:30:00:01", gi)
	ts.lease("00:04:13:30:00:02", gi)
	ts.lease("00:04:13:30:00:09", gi) // its reservation, outside the pool
	want := []SubnetUsage{{p4("10.77.0.0/24"), true, 1, 100}, {p4("10.20.0.0/24"), false, 0, 100}, {p4("10.30.0.0/24"), false, 2, 100}}
	if got := ts.SubnetUsage(); !slices.Equal(got, want) {
		t.Errorf("SubnetUsage = %v, want %v", got, want)
	}
	if used, total := ts.PoolUsage(); used != 3 || total != 300 {
		t.Errorf("PoolUsage = %d of %d, want 3 of 300", used, total)
	}
}

// A pool that overlaps another subnet's is found even when the LAN subnet
// is not known (check away from the machine).
func TestPrepareSubnetsPoolsOverlapWithoutLAN(t *testing.T) {
	o := baseOptions(t.TempDir())
	o.ServerIP, o.Subnet = netip.Addr{}, netip.Prefix{}
	sub := relayedSubnet()
	sub.Subnet, sub.Pool, sub.Reservations = p4("10.77.0.0/24"), "10.77.0.150-10.77.0.250", nil
	sub.Router = netip.Addr{}
	o.Subnets = []Options{sub}
	_, err := Prepare(o)
	if fe := field.List(err); len(fe) != 1 || fe[0].Key != "subnets[0].pool" || !strings.Contains(fe[0].Msg, "overlaps 10.77.0.100-10.77.0.199 of the primary subnet") {
		t.Fatalf("err = %v", err)
	}
}

// TestRelayedSubnetDORA: a relayed DISCOVER and REQUEST get their subnet's
// address, router, DNS, domain and option 66, sent to giaddr:67; a
// reserved phone there gets its reservation; a request from a relay in no
// subnet served is dropped and counted.
func TestRelayedSubnetDORA(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	gi := dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1))
	snom := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785"))
	off := ts.do(discover("00:04:13:30:00:01", gi, snom))
	if off == nil || off.msg.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("no OFFER: %v", off)
	}
	if ip := ipOf(off.msg); ip.Less(a4("10.30.0.100")) || a4("10.30.0.199").Less(ip) {
		t.Errorf("offered %v, want the relayed subnet's pool", ip)
	}
	if off.to != netip.MustParseAddrPort("10.30.0.1:67") || off.hw != nil {
		t.Errorf("OFFER sent to %v (hw %v), want the relay at 10.30.0.1:67", off.to, off.hw)
	}
	ack := ts.do(requestFor(off.msg, gi, snom))
	if ack == nil || ack.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(ack.msg) != ipOf(off.msg) {
		t.Fatalf("no ACK for the offer: %v", ack)
	}
	m := ack.msg
	if ack.to != netip.MustParseAddrPort("10.30.0.1:67") {
		t.Errorf("ACK sent to %v", ack.to)
	}
	if r := m.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 30, 0, 1)) {
		t.Errorf("router = %v", r)
	}
	if d := m.DNS(); len(d) != 1 || !d[0].Equal(net.IPv4(10, 30, 0, 53)) {
		t.Errorf("dns = %v", d)
	}
	if m.DomainName() != "site-b.lan" || m.TFTPServerName() != "http://10.77.0.1:8080/b/" {
		t.Errorf("domain/66 = %q/%q", m.DomainName(), m.TFTPServerName())
	}
	if got := addrOf(m.ServerIdentifier()); got != a4("10.77.0.1") {
		t.Errorf("option 54 = %v, want the address relays forward to", got)
	}
	if got := m.Options.Get(dhcpv4.GenericOptionCode(132)); got != nil {
		t.Errorf("the relayed subnet sets no voice VLAN, got option 132 %q", got)
	}
	// At T1 the phone renews by unicast straight to option 54, not
	// through the relay: ciaddr picks its subnet, the ACK goes to ciaddr.
	renew, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac("00:04:13:30:00:01")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(m.YourIPAddr), snom)
	re := ts.do(renew)
	if re == nil || re.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(re.msg) != ipOf(m) || re.to != netip.AddrPortFrom(ipOf(m), 68) {
		t.Errorf("direct renewal: %+v", re)
	} else if r := re.msg.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 30, 0, 1)) {
		t.Errorf("direct renewal's router %v, want the relayed subnet's", r)
	}
	if res := ts.lease("00:04:13:30:00:09", gi); ipOf(res.msg) != a4("10.30.0.9") {
		t.Errorf("reserved phone got %v, want 10.30.0.9", ipOf(res.msg))
	}
	// A relay whose giaddr is on the VLAN's subnet names the relayed link
	// with option 118 or with option 82's link selection: that picks the
	// subnet, the reply still goes to giaddr, and 118 is echoed.
	viaVLAN := dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 254))
	for _, tt := range []struct {
		name, hw string
		sel      dhcpv4.Modifier
	}{
		{"option 118", "00:04:13:30:00:1a", dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionSubnetSelection, []byte{10, 30, 0, 0}))},
		{"option 82.5", "00:04:13:30:00:1b", dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(
			dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.LinkSelectionSubOption), []byte{10, 30, 0, 0})))},
	} {
		off := ts.do(discover(tt.hw, viaVLAN, tt.sel))
		if off == nil || !p4("10.30.0.0/24").Contains(ipOf(off.msg)) || off.to != netip.MustParseAddrPort("10.20.0.254:67") {
			t.Errorf("%s: %+v", tt.name, off)
			continue
		}
		if tt.name == "option 118" && !bytes.Equal(off.msg.Options.Get(dhcpv4.OptionSubnetSelection), []byte{10, 30, 0, 0}) {
			t.Errorf("option 118 not echoed: %v", off.msg.Options.Get(dhcpv4.OptionSubnetSelection))
		}
	}
	// A client's own option 118, not relayed, does not move it.
	if own := ts.do(discover("00:04:13:77:00:0c", dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionSubnetSelection, []byte{10, 30, 0, 0})))); own == nil || !p4("10.77.0.0/24").Contains(ipOf(own.msg)) {
		t.Errorf("a client's own option 118: %+v", own)
	}
	// The primary subnet's clients are untouched.
	if lan := ts.lease("00:04:13:77:00:01"); !p4("10.77.0.0/24").Contains(ipOf(lan.msg)) {
		t.Errorf("LAN client got %v", ipOf(lan.msg))
	}
	if r := ts.do(discover("00:04:13:99:00:01", dhcpv4.WithGatewayIP(net.IPv4(192, 168, 9, 1)))); r != nil {
		t.Errorf("a relay in no subnet got %v", r.msg.MessageType())
	}
	if n := ts.NoSubnet(); n != 1 {
		t.Errorf("NoSubnet = %d, want 1", n)
	}
	// A relayed client asking for an address of another subnet is NAKed,
	// and the NAK goes to the relay with the broadcast bit.
	nak := ts.do(initReboot("00:04:13:30:00:02", "10.20.0.150", gi))
	if nak == nil || nak.msg.MessageType() != dhcpv4.MessageTypeNak || nak.to != netip.MustParseAddrPort("10.30.0.1:67") || !nak.msg.IsBroadcast() {
		t.Errorf("want a NAK to the relay, got %+v", nak)
	}
}

// TestLocalSubnetByInterface: a request arriving on the VLAN's socket gets
// the VLAN subnet's pool, options and server identifier, and leaves by it.
func TestLocalSubnetByInterface(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	vlan := &link{iface: "eth0.20"}
	on := func(l *link, req *dhcpv4.DHCPv4) *sent {
		ts.mu.Lock()
		ts.out = nil
		ts.mu.Unlock()
		ts.handle(req.ToBytes(), netip.MustParseAddrPort("0.0.0.0:68"), l, nil)
		ts.store.barrier()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if len(ts.out) != 1 {
			t.Fatalf("%d replies", len(ts.out))
		}
		return &ts.out[0]
	}
	snom := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785"))
	off := on(vlan, discover("00:04:13:20:00:01", snom))
	if ip := ipOf(off.msg); !p4("10.20.0.0/24").Contains(ip) {
		t.Fatalf("offered %v on the VLAN", ip)
	}
	ack := on(vlan, requestFor(off.msg, snom))
	m := ack.msg
	if m.MessageType() != dhcpv4.MessageTypeAck || addrOf(m.ServerIdentifier()) != a4("10.20.0.1") {
		t.Fatalf("ACK %v from %v", m.MessageType(), m.ServerIdentifier())
	}
	if m.TFTPServerName() != "http://10.20.0.1:8080/" || string(m.Options.Get(dhcpv4.GenericOptionCode(132))) != "20" {
		t.Errorf("66 = %q, 132 = %q", m.TFTPServerName(), m.Options.Get(dhcpv4.GenericOptionCode(132)))
	}
	if r := m.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 20, 0, 254)) {
		t.Errorf("router = %v", r)
	}
	// Both leave by the VLAN's link, from our address there.
	for _, r := range []*sent{off, ack} {
		if r.via != vlan || r.src != a4("10.20.0.1") {
			t.Errorf("%v left by %v from %v, want the VLAN's link from 10.20.0.1", r.msg.MessageType(), r.via, r.src)
		}
	}
	// A LAN request still leaves by the LAN's link.
	if lan := on(nil, discover("00:04:13:77:00:02")); lan.via != nil || lan.src != a4("10.77.0.1") || !p4("10.77.0.0/24").Contains(ipOf(lan.msg)) {
		t.Errorf("LAN OFFER %v via %v from %v", ipOf(lan.msg), lan.via, lan.src)
	}
}

// TestReloadSubnets: a subnet's pool and options reload at once; a subnet
// on another interface needs a restart, and such a reload changes nothing.
func TestReloadSubnets(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	o := ts.Options()
	o.Subnets = []Options{vlanSubnet(), relayedSubnet()}
	o.Subnets[1].Pool, o.Subnets[1].Router = "10.30.0.20-10.30.0.29", a4("10.30.0.2")
	if err := ts.Reload(o); err != nil {
		t.Fatalf("reload of a relayed subnet's pool: %v", err)
	}
	ack := ts.lease("00:04:13:30:00:03", dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1)))
	if ip := ipOf(ack.msg); ip.Less(a4("10.30.0.20")) || a4("10.30.0.29").Less(ip) {
		t.Errorf("after the reload got %v, want the new pool", ip)
	}
	if r := ack.msg.Router(); len(r) != 1 || !r[0].Equal(net.IPv4(10, 30, 0, 2)) {
		t.Errorf("router %v after the reload", r)
	}
	for name, mutate := range map[string]func(*Options){
		"moved":   func(o *Options) { o.Subnets[0].Interface = "eth0.21" },
		"added":   func(o *Options) { o.Subnets[1].Interface, o.Subnets[1].ServerIP = "eth0.30", a4("10.30.0.254") },
		"removed": func(o *Options) { o.Subnets = o.Subnets[1:] },
		"LAN pool taken away": func(o *Options) {
			o.Pool, o.PoolStart, o.PoolEnd = "", netip.Addr{}, netip.Addr{}
		},
	} {
		n := ts.Options()
		n.Subnets = []Options{vlanSubnet(), relayedSubnet()}
		mutate(&n)
		err := ts.Reload(n)
		if err == nil || !strings.Contains(err.Error(), "needs a restart") {
			t.Errorf("%s: reload = %v, want a restart", name, err)
		}
	}
	if got := ts.Options().Subnets[1].PoolStart; got != a4("10.30.0.20") {
		t.Errorf("a refused reload changed the pool to start at %v", got)
	}
}

// TestReloadLANPoolWithOtherServers: with allow_other_servers the start-up
// search decides nothing, so the LAN pool may come and go by a reload.
func TestReloadLANPoolWithOtherServers(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	o := ts.Options()
	o.AllowOtherServers = true
	o.Pool, o.PoolStart, o.PoolEnd = "", netip.Addr{}, netip.Addr{}
	if err := ts.Reload(o); err != nil {
		t.Fatalf("taking the LAN pool away: %v", err)
	}
	if r := ts.do(discover("00:04:13:77:00:05")); r != nil {
		t.Errorf("a LAN DISCOVER after the pool went got %v", r.msg.MessageType())
	}
}

// TestReloadBetweenDecisionAndPool: a DISCOVER decided with options that a
// reload then replaced (its subnet's pool range gone) is dropped, not
// offered from the wrong range or a crash; its retransmission meets the
// new options.
func TestReloadBetweenDecisionAndPool(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	old := ts.opts.Load()
	n := ts.Options()
	n.Subnets = n.Subnets[:1] // the relayed subnet, the last scope, goes
	if err := ts.Reload(n); err != nil {
		t.Fatal(err)
	}
	req := discover("00:04:13:30:00:09", dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1)))
	ts.runChain(&exchange{req: req, peer: netip.MustParseAddrPort("10.30.0.1:67"), opts: old, root: old, now: ts.now()}, 0)
	ts.store.barrier()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.out) != 0 {
		t.Errorf("a DISCOVER decided before the reload got %d replies", len(ts.out))
	}
}

// A prepared Options given back (Options, changed, to Reload) is accepted:
// its entries carry the server's own server-wide values.
func TestPreparedSubnetsRoundTrip(t *testing.T) {
	ts := newTestServer(t, withSubnets)
	o := ts.Options()
	o.Subnets[0].Router = a4("10.20.0.253")
	if err := ts.Reload(o); err != nil {
		t.Fatal(err)
	}
	o.Subnets[0].Serve = ServePhones
	if err := ts.Reload(o); err == nil || !strings.Contains(err.Error(), "server-wide") {
		t.Errorf("an entry's own serve: %v", err)
	}
}

// BenchmarkSubnetFor is the selection alone: a relayed request for the
// last of eight subnets, and a direct one on the LAN.
func BenchmarkSubnetFor(b *testing.B) {
	o := baseOptions(b.TempDir())
	o.Interface = "eth0"
	for i := range 7 {
		o.Subnets = append(o.Subnets, Options{
			ServerIP: o.ServerIP, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(80 + i), 0, 0}), 16),
			Pool: fmt.Sprintf("10.%d.1.0-10.%d.1.200", 80+i, 80+i),
		})
	}
	p, err := Prepare(o)
	if err != nil {
		b.Fatal(err)
	}
	po := p.Options()
	gi := a4("10.86.0.2")
	b.Run("relayed-last-of-8", func(b *testing.B) {
		for b.Loop() {
			if sn, _, _ := po.subnetFor(gi, netip.Addr{}, "eth0"); sn == nil {
				b.Fatal("no subnet")
			}
		}
	})
	b.Run("direct-lan", func(b *testing.B) {
		for b.Loop() {
			if sn, _, _ := po.subnetFor(netip.Addr{}, netip.Addr{}, "eth0"); sn == nil {
				b.Fatal("no subnet")
			}
		}
	})
}
