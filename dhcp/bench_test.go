package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/metrics"
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

// BenchmarkPipelineDORA (b.N rounded up to whole batches) measures what the server itself spends on one
// fresh-lease DORA on the batched path the sockets use: a batch of 64
// DISCOVERs through handle and one flush (the OFFERs), then their 64
// REQUESTs (the ACKs leave from the lease writer after its fsync). The
// datagrams are encoded before the timer starts and the replies are not
// parsed, so ns/op and allocs/op are the server's: parse, decide, build,
// encode, journal, fsync, and the inventory event through the metrics
// decorator into a real in-memory inventory. Clients are Snom phones, as in
// bench/dhcp.sh.
func BenchmarkPipelineDORA(b *testing.B) {
	o := baseOptions(b.TempDir())
	o.Subnet = netip.MustParsePrefix("10.78.0.0/16")
	o.PoolStart, o.PoolEnd = netip.MustParseAddr("10.78.1.0"), netip.MustParseAddr("10.78.255.254")
	o.Router = netip.Addr{}
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(o, nil, metrics.NewRecorder(inv))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	var acks atomic.Int64
	s.send = func([]byte, route) error { return nil }
	s.sendBatch = func(_ *sendScratch, msgs []outMsg) error {
		for _, m := range msgs {
			if replyType(m.b) == dhcpv4.MessageTypeAck {
				acks.Add(1)
			}
		}
		return nil
	}
	if err := s.openState(s.opts.Load()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.store.close() })
	gi := dhcpv4.WithGatewayIP(net.IPv4(10, 78, 0, 2))
	peer := netip.MustParseAddrPort("10.78.0.2:67")
	n := (b.N + batch - 1) / batch
	// A fresh pool offers its addresses in order, so the k-th client's
	// REQUEST can be encoded now; a wrong guess would be NAKed and fail.
	disc, reqs := make([][][]byte, n), make([][][]byte, n)
	next := o.PoolStart
	for i := range n {
		for j := range batch {
			hw := net.HardwareAddr{0, 0x04, 0x13, byte(i >> 8), byte(i), byte(j)}
			d, _ := dhcpv4.NewDiscovery(hw, gi, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snom D785")))
			disc[i] = append(disc[i], d.ToBytes())
			r, _ := dhcpv4.NewRequestFromOffer(&dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootReply, HWType: d.HWType,
				ClientHWAddr: hw, TransactionID: d.TransactionID, YourIPAddr: next.AsSlice(),
				Options: dhcpv4.OptionsFromList(dhcpv4.OptServerIdentifier(o.ServerIP.AsSlice()))}, gi,
				dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snom D785")))
			reqs[i] = append(reqs[i], r.ToBytes())
			next = next.Next()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var out outbox
	for i := range n {
		for _, d := range disc[i] {
			s.handle(d, peer, nil, &out)
		}
		s.flushOut(&out)
		for _, r := range reqs[i] {
			s.handle(r, peer, nil, &out)
		}
		s.flushOut(&out)
	}
	s.store.barrier() // every ACK queued before it has been sent
	b.StopTimer()
	if got := acks.Load(); got != int64(n*batch) {
		b.Fatalf("%d ACKs for %d DORAs", got, n*batch)
	}
}

// replyType is a reply's option 53, read without parsing the packet: the
// server writes it first among the options.
func replyType(p []byte) dhcpv4.MessageType {
	for i := 240; i+2 < len(p) && p[i] != 255; i += 2 + int(p[i+1]) {
		if p[i] == 53 {
			return dhcpv4.MessageType(p[i+2])
		}
	}
	return dhcpv4.MessageTypeNone
}

// BenchmarkJournalSync is the choice behind journalExtent: one group
// commit of 40 records made durable, by appending and fsyncing (the
// journal before) against writing into zeroed blocks and fdatasyncing (the
// journal now), on the disk the test's temporary directory is on. Besides
// the time per group it reports the CPU the whole machine spent per group
// (machine-cpu-us: the file system's own threads included, which the
// process's figures miss).
func BenchmarkJournalSync(b *testing.B) {
	var group []byte
	for i := range 40 {
		l := testLease(i)
		group = appendRecord(group, &l)
	}
	for _, mode := range []string{"append-fsync", "in-place-fdatasync"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "journal"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if mode == "in-place-fdatasync" {
				if _, err := f.Write(make([]byte, len(group)*b.N)); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			busy0 := machineBusy(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if mode == "append-fsync" {
					_, err = f.Write(group)
					if err == nil {
						err = f.Sync()
					}
				} else {
					_, err = f.WriteAt(group, int64(i*len(group)))
					if err == nil {
						err = fdatasync(f)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((machineBusy(b)-busy0).Microseconds())/float64(b.N), "machine-cpu-us")
		})
	}
}

// machineBusy is the CPU time all CPUs spent outside idle and iowait
// (/proc/stat), at the kernel's tick resolution.
func machineBusy(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Skip("no /proc/stat:", err)
	}
	var user, nice, sys, idle, iowait, irq, softirq int64
	if _, err := fmt.Sscanf(string(raw), "cpu %d %d %d %d %d %d %d", &user, &nice, &sys, &idle, &iowait, &irq, &softirq); err != nil {
		b.Skip("unreadable /proc/stat:", err)
	}
	return time.Duration(user+nice+sys+irq+softirq) * time.Second / 100 // USER_HZ is 100 on Linux
}
