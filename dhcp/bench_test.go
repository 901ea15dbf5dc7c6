package dhcp

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkDORA measures the server's own cost of one fresh-lease DORA
// (parse, allocate, build, encode, journal + fsync) without the network.
// Many exchanges are in flight, as in a boot storm, so group commit applies.
func BenchmarkDORA(b *testing.B) {
	o := baseOptions(b.TempDir())
	o.Subnet = netip.MustParsePrefix("10.78.0.0/16")
	o.PoolStart, o.PoolEnd = netip.MustParseAddr("10.78.1.0"), netip.MustParseAddr("10.78.255.254")
	o.Router = netip.Addr{}
	benchDORA(b, o, net.IPv4(10, 78, 0, 2))
}

// BenchmarkDORASubnets is BenchmarkDORA for a relayed subnet that is the
// last of eight, so subnet selection takes its longest path.
func BenchmarkDORASubnets(b *testing.B) {
	o := baseOptions(b.TempDir())
	for i := range 7 {
		o.Subnets = append(o.Subnets, Options{
			ServerIP: o.ServerIP, Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(80 + i), 0, 0}), 16),
			PoolStart: netip.AddrFrom4([4]byte{10, byte(80 + i), 1, 0}), PoolEnd: netip.AddrFrom4([4]byte{10, byte(80 + i), 255, 254}),
			UpdateServer: o.UpdateServer,
		})
	}
	benchDORA(b, o, net.IPv4(10, 86, 0, 2))
}

// benchDORA runs fresh-lease DORAs relayed from gi through a server with o.
func benchDORA(b *testing.B, o Options, giaddr net.IP) {
	ts := startTestServer(b, o)
	var mu sync.Mutex
	waiting := map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}
	ts.send = func(p []byte, _ route) error {
		m, _ := dhcpv4.FromBytes(p)
		mu.Lock()
		ch := waiting[m.TransactionID]
		mu.Unlock()
		ch <- m
		return nil
	}
	gi := dhcpv4.WithGatewayIP(giaddr)
	peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte(giaddr.To4())), 67)
	var n atomic.Int64
	exchange := func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		ch := make(chan *dhcpv4.DHCPv4, 1)
		mu.Lock()
		waiting[m.TransactionID] = ch
		mu.Unlock()
		ts.handlePacket(m.ToBytes(), peer)
		r := <-ch
		mu.Lock()
		delete(waiting, m.TransactionID)
		mu.Unlock()
		return r
	}
	b.ResetTimer()
	b.SetParallelism(64) // many exchanges in flight, as in a boot storm
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			hw := net.HardwareAddr{0, 0x0c, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.NewDiscovery(hw, gi)
			off := exchange(d)
			r, _ := dhcpv4.NewRequestFromOffer(off, gi)
			if ack := exchange(r); ack.MessageType() != dhcpv4.MessageTypeAck {
				b.Error("no ACK")
			}
		}
	})
}
