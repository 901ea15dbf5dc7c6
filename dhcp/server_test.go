package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// sent is one reply the server would have put on the wire.
type sent struct {
	msg *dhcpv4.DHCPv4
	to  netip.AddrPort
	hw  net.HardwareAddr // set when sent to a MAC at L2
	via *link            // the interface's link, nil for the LAN's
	src netip.Addr       // our address on it
}

type testServer struct {
	*Server
	t   testing.TB
	mu  sync.Mutex
	out []sent
	obs []inventory.Observation
}

func (ts *testServer) Record(o inventory.Observation) {
	ts.mu.Lock()
	ts.obs = append(ts.obs, o)
	ts.mu.Unlock()
}

func baseOptions(dir string) Options {
	return Options{
		ServerIP: netip.MustParseAddr("10.77.0.1"), Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		PoolStart: netip.MustParseAddr("10.77.0.100"), PoolEnd: netip.MustParseAddr("10.77.0.199"),
		Router: netip.MustParseAddr("10.77.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		UpdateServer: "http://10.77.0.1:8080/", UpdateFilename: "snom.htm",
		StateDir: dir, ConflictProbe: -1, OtherServerWait: -1,
	}
}

// newTestServer runs the whole handler chain and lease store without any
// socket: replies are captured instead of sent.
func newTestServer(t testing.TB, mutate func(*Options)) *testServer {
	t.Helper()
	o := baseOptions(t.TempDir())
	if mutate != nil {
		mutate(&o)
	}
	return startTestServer(t, o)
}

func startTestServer(t testing.TB, o Options) *testServer {
	t.Helper()
	ts := &testServer{t: t}
	s, err := New(o, nil, ts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	s.send = func(b []byte, to route) error {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			t.Errorf("server sent an unparsable reply: %v", err)
			return nil
		}
		ts.mu.Lock()
		ts.out = append(ts.out, sent{m, to.to, to.hw, to.via, to.src})
		ts.mu.Unlock()
		return nil
	}
	if err := s.openState(s.opts.Load()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.store != nil {
		ts.store.close()
		ts.store = nil
	}
	if ts.lockFile != nil {
		ts.lockFile.Close()
		ts.lockFile = nil
	}
}

// do handles one request and returns the reply, or nil.
func (ts *testServer) do(req *dhcpv4.DHCPv4) *sent {
	ts.t.Helper()
	ts.mu.Lock()
	ts.out = nil
	ts.mu.Unlock()
	ts.handlePacket(req.ToBytes(), netip.MustParseAddrPort("0.0.0.0:68"))
	ts.store.barrier() // ACKs leave from the lease writer
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch len(ts.out) {
	case 0:
		return nil
	case 1:
		return &ts.out[0]
	}
	ts.t.Fatalf("%d replies to one request", len(ts.out))
	return nil
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func discover(hw string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d, err := dhcpv4.NewDiscovery(mac(hw), mods...)
	if err != nil {
		panic(err)
	}
	return d
}

func requestFor(offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	r, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		panic(err)
	}
	return r
}

// lease runs DISCOVER+REQUEST and returns the ACK.
func (ts *testServer) lease(hw string, mods ...dhcpv4.Modifier) *sent {
	ts.t.Helper()
	off := ts.do(discover(hw, mods...))
	if off == nil || off.msg.MessageType() != dhcpv4.MessageTypeOffer {
		ts.t.Fatalf("no OFFER for %s: %+v", hw, off)
	}
	ack := ts.do(requestFor(off.msg, mods...))
	if ack == nil || ack.msg.MessageType() != dhcpv4.MessageTypeAck {
		ts.t.Fatalf("no ACK for %s: %v", hw, ack)
	}
	return ack
}

func ipOf(m *dhcpv4.DHCPv4) netip.Addr { return addrOf(m.YourIPAddr) }

func TestDORAAndDurability(t *testing.T) {
	ts := newTestServer(t, nil)
	off := ts.do(discover("00:04:13:a1:1f:a7", dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")), dhcpv4.WithOption(dhcpv4.OptHostName("desk1"))))
	if off == nil || off.msg.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("want OFFER, got %v", off)
	}
	ip := ipOf(off.msg)
	if !ts.pool.inPool(ip) {
		t.Fatalf("offered %v outside the pool", ip)
	}
	if got := addrOf(off.msg.ServerIdentifier()); got != netip.MustParseAddr("10.77.0.1") {
		t.Errorf("option 54 = %v", got)
	}
	// Nothing is committed on DISCOVER.
	if l, _ := LoadLeases(ts.opts.Load().StateDir); len(l) != 0 {
		t.Fatalf("DISCOVER committed a lease: %v", l)
	}
	ack := ts.do(requestFor(off.msg, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")), dhcpv4.WithOption(dhcpv4.OptHostName("desk1"))))
	if ack == nil || ack.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(ack.msg) != ip {
		t.Fatalf("want ACK for %v, got %v", ip, ack)
	}
	m := ack.msg
	if m.IPAddressLeaseTime(0) != 12*time.Hour || m.IPAddressRenewalTime(0) != 6*time.Hour || m.IPAddressRebindingTime(0) != 12*time.Hour*7/8 {
		t.Errorf("lease/T1/T2 = %v/%v/%v", m.IPAddressLeaseTime(0), m.IPAddressRenewalTime(0), m.IPAddressRebindingTime(0))
	}
	if m.TFTPServerName() != "http://10.77.0.1:8080/" || m.BootFileNameOption() != "snom.htm" {
		t.Errorf("66/67 = %q/%q", m.TFTPServerName(), m.BootFileNameOption())
	}
	if !bytes.Equal(m.SubnetMask(), net.CIDRMask(24, 32)) || len(m.Router()) != 1 || len(m.DNS()) != 1 {
		t.Errorf("mask/router/dns = %v/%v/%v", m.SubnetMask(), m.Router(), m.DNS())
	}
	// The ACK left only after the lease was on disk.
	leases, err := LoadLeases(ts.opts.Load().StateDir)
	if err != nil || len(leases) != 1 || leases[0].IP != ip || leases[0].State != StateBound || leases[0].Hostname != "desk1" {
		t.Fatalf("leases on disk after ACK: %v %v", leases, err)
	}
	// Inventory: DISCOVER, REQUEST, ACK with the model from option 60.
	var kinds []string
	for _, o := range ts.obs {
		kinds = append(kinds, string(o.Event.Kind))
		if o.Model != "snomD785" || o.Hostname != "desk1" || o.Event.Step != inventory.StepDHCP {
			t.Errorf("observation %+v", o)
		}
	}
	if strings.Join(kinds, ",") != "DISCOVER,REQUEST,ACK" {
		t.Errorf("inventory kinds %v", kinds)
	}
	if last := ts.obs[len(ts.obs)-1]; last.IP != ip || !strings.Contains(last.Event.Detail, "lease 12h") {
		t.Errorf("ACK observation %+v", last)
	}
}

func TestOptions66And67(t *testing.T) {
	prl := dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter)
	prl66 := dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName)
	tests := []struct {
		name   string
		hw     string
		mods   []dhcpv4.Modifier
		want66 bool
	}{
		{"phone by OUI, not requesting 66/67", "00:04:13:00:00:01", []dhcpv4.Modifier{prl}, true},
		{"phone by OUI 00:08:7B", "00:08:7b:00:00:01", []dhcpv4.Modifier{prl}, true},
		{"phone by vendor class", "02:00:00:00:00:02", []dhcpv4.Modifier{prl, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snom760"))}, true},
		{"PC not requesting", "02:00:00:00:00:03", []dhcpv4.Modifier{prl}, false},
		{"PC requesting", "02:00:00:00:00:04", []dhcpv4.Modifier{prl66}, true},
	}
	ts := newTestServer(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := ts.lease(tt.hw, tt.mods...)
			has66 := ack.msg.Options.Has(dhcpv4.OptionTFTPServerName)
			has67 := ack.msg.Options.Has(dhcpv4.OptionBootfileName)
			if has66 != tt.want66 || has67 != tt.want66 {
				t.Errorf("66 present %v, 67 present %v; want %v", has66, has67, tt.want66)
			}
		})
	}
}

func TestOption43SnomEncoding(t *testing.T) {
	// The byte strings are Snom's own examples (docs §2.2).
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"66 and 67", Options{UpdateServer: "http://test", UpdateFilename: "snom/settings.php"},
			"420c687474703a2f2f7465737400" + "4312736e6f6d2f73657474696e67732e70687000"},
		{"vlan 3", Options{UpdateServer: "http://test", VoiceVLAN: 3},
			"420c687474703a2f2f7465737400" + "8402330085023000"},
		{"vlan 114 prio 5", Options{VoiceVLAN: 114, VoicePriority: 5}, "840431313400" + "8502350" + "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hexString(snomVendorOptions(&tt.o)); got != tt.want {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
	ts := newTestServer(t, func(o *Options) { o.VendorOptions = true; o.VoiceVLAN = 114; o.VoicePriority = 5 })
	ack := ts.lease("00:04:13:00:00:09")
	if v := ack.msg.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Contains(v, []byte{0x84, 4, '1', '1', '4', 0}) {
		t.Errorf("option 43 = %x", v)
	}
	if v := ack.msg.Options.Get(optVoiceVLAN); string(v) != "114" {
		t.Errorf("option 132 = %q", v)
	}
	pc := ts.lease("02:00:00:00:00:09")
	if pc.msg.Options.Has(dhcpv4.OptionVendorSpecificInformation) || pc.msg.Options.Has(optVoiceVLAN) {
		t.Errorf("a PC got Snom vendor options")
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

func TestTimeOffsetAndNTP(t *testing.T) {
	off := -7 * time.Hour
	ts := newTestServer(t, func(o *Options) {
		o.TimeOffset = &off
		o.NTP = []netip.Addr{netip.MustParseAddr("10.77.0.5")}
		o.Domain = "office.lan"
	})
	m := ts.lease("00:04:13:00:00:10").msg
	if got := m.Options.Get(dhcpv4.OptionTimeOffset); !bytes.Equal(got, []byte{0xff, 0xff, 0x9d, 0x90}) {
		t.Errorf("option 2 = %x, want ffff9d90 (docs: UTC-7h)", got)
	}
	if len(m.NTPServers()) != 1 || m.DomainName() != "office.lan" {
		t.Errorf("ntp %v domain %q", m.NTPServers(), m.DomainName())
	}
}

func TestRenewRebindReleaseReturn(t *testing.T) {
	ts := newTestServer(t, nil)
	hw := "00:04:13:00:00:20"
	ack := ts.lease(hw)
	ip := ipOf(ack.msg)
	for _, state := range []string{"renewing", "rebinding"} {
		renew, _ := dhcpv4.NewRenewFromAck(ack.msg)
		if state == "rebinding" {
			renew.DeleteOption(dhcpv4.OptionServerIdentifier)
			renew.SetBroadcast()
		}
		r := ts.do(renew)
		if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(r.msg) != ip {
			t.Fatalf("%s: want ACK %v, got %v", state, ip, r)
		}
		if r.to != netip.AddrPortFrom(ip, 68) {
			t.Errorf("%s: reply to %v, want unicast to ciaddr", state, r.to)
		}
	}
	rel, _ := dhcpv4.NewReleaseFromACK(ack.msg)
	if ts.do(rel) != nil {
		t.Fatal("RELEASE was answered")
	}
	if l, _ := LoadLeases(ts.opts.Load().StateDir); len(l) != 1 || l[0].State != StateReleased {
		t.Fatalf("after release: %v", l)
	}
	// Another client comes in between; the returning client still gets its address.
	other := ts.lease("00:04:13:00:00:21")
	if ipOf(other.msg) == ip {
		t.Fatal("a new client got the released address of someone else while fresh ones were free")
	}
	if again := ts.lease(hw); ipOf(again.msg) != ip {
		t.Fatalf("returning client got %v, want %v", ipOf(again.msg), ip)
	}
}

func TestQuickRenewalReusesDurableLease(t *testing.T) {
	ts := newTestServer(t, nil)
	hw := "00:04:13:00:00:95"
	ack := ts.lease(hw)
	journal := func() int {
		ts.store.barrier()
		return ts.store.records
	}
	before := journal()
	// Within the first quarter: the same lease, its remaining time, no write.
	ts.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	renew, _ := dhcpv4.NewRenewFromAck(ack.msg)
	r := ts.do(renew)
	if r == nil || ipOf(r.msg) != ipOf(ack.msg) {
		t.Fatalf("renewal: %v", r)
	}
	if lt := r.msg.IPAddressLeaseTime(0); lt > 10*time.Hour+time.Second || lt < 10*time.Hour-time.Minute {
		t.Errorf("lease time %v, want the remaining ~10h", lt)
	}
	if d := r.msg.IPAddressLeaseTime(0)/2 - r.msg.IPAddressRenewalTime(0); d < 0 || d > time.Second {
		t.Errorf("T1 %v for lease %v", r.msg.IPAddressRenewalTime(0), r.msg.IPAddressLeaseTime(0))
	}
	if after := journal(); after != before {
		t.Errorf("quick renewal wrote %d journal records", after-before)
	}
	// Past the quarter: a full new lease, journalled before the ACK.
	ts.now = func() time.Time { return time.Now().Add(4 * time.Hour) }
	r = ts.do(renew)
	if r == nil || r.msg.IPAddressLeaseTime(0) != 12*time.Hour {
		t.Fatalf("late renewal: %v", r)
	}
	if after := journal(); after != before+1 {
		t.Errorf("late renewal wrote %d journal records, want 1", after-before)
	}
	l, _ := LoadLeases(ts.opts.Load().StateDir)
	if len(l) != 1 || l[0].Expiry.Before(time.Now().Add(15*time.Hour)) {
		t.Errorf("on disk after the late renewal: %v", l)
	}
}

func TestClientMovesAddress(t *testing.T) {
	o := baseOptions(t.TempDir())
	o.Authoritative = true
	ts := startTestServer(t, o)
	hw := "00:04:13:00:00:90"
	first := ipOf(ts.lease(hw).msg)
	// INIT-REBOOT asking for another free address, authoritative: granted,
	// the old one is freed.
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(hw)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.190"))))
	if r := ts.do(req); r == nil || ipOf(r.msg) != netip.MustParseAddr("10.77.0.190") {
		t.Fatalf("move: %v", r)
	}
	ts.stop()
	ts2 := startTestServer(t, o)
	if used, _ := ts2.PoolUsage(); used != 1 {
		t.Errorf("after restart %d addresses held, want 1 (%v should be free)", used, first)
	}
}

func TestRestartKeepsLeases(t *testing.T) {
	o := baseOptions(t.TempDir())
	ts := startTestServer(t, o)
	want := map[string]netip.Addr{}
	for i := 0; i < 20; i++ {
		hw := net.HardwareAddr{0, 4, 0x13, 0, 1, byte(i)}.String()
		want[hw] = ipOf(ts.lease(hw).msg)
	}
	ts.stop()
	ts2 := startTestServer(t, o)
	for hw, ip := range want {
		// INIT-REBOOT: option 50, no server id.
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(hw)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())), dhcpv4.WithBroadcast(true))
		r := ts2.do(req)
		if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(r.msg) != ip {
			t.Errorf("%s after restart: %v", hw, r)
		}
		// And a fresh DISCOVER offers the same address.
		if off := ts2.do(discover(hw)); off == nil || ipOf(off.msg) != ip {
			t.Errorf("%s rediscover: %v", hw, off)
		}
	}
}

// TestNAKs runs authoritative, so INIT-REBOOTs from clients without a record
// are answered (TestInitRebootRFC2131_4_3_2 has the default).
func TestNAKs(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Authoritative = true })
	owner := ts.lease("00:04:13:00:00:30")
	taken := ipOf(owner.msg)
	tests := []struct {
		name string
		hw   string
		ip   string
		mods []dhcpv4.Modifier
		want string // reply destination
	}{
		{"foreign network", "00:04:13:00:00:31", "192.168.5.5", nil, "255.255.255.255:68"},
		{"another client's address", "00:04:13:00:00:32", taken.String(), nil, "255.255.255.255:68"},
		{"in subnet, outside pool", "00:04:13:00:00:33", "10.77.0.20", nil, "255.255.255.255:68"},
		{"relayed", "00:04:13:00:00:34", "192.168.5.5", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.ParseIP("10.77.0.2"))}, "10.77.0.2:67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(initReboot(tt.hw, tt.ip, tt.mods...))
			if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeNak {
				t.Fatalf("want NAK, got %v", r)
			}
			if r.to.String() != tt.want || ipOf(r.msg).IsValid() || r.msg.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
				t.Errorf("NAK to %v yiaddr %v lease %v", r.to, r.msg.YourIPAddr, r.msg.Options.Has(dhcpv4.OptionIPAddressLeaseTime))
			}
			if strings.HasPrefix(tt.name, "relayed") && !r.msg.IsBroadcast() {
				t.Error("relayed NAK without the broadcast bit")
			}
		})
	}
	// A REQUEST for another server's offer is silent and frees our offer.
	off := ts.do(discover("00:04:13:00:00:35"))
	req := requestFor(off.msg)
	req.UpdateOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.254")))
	if r := ts.do(req); r != nil {
		t.Errorf("answered a REQUEST addressed to another server: %v", r)
	}
	if _, held := ts.pool.offers[keyFor(phone.MAC{0, 4, 0x13, 0, 0, 0x35}, nil)]; held {
		t.Error("offer still held after the client chose another server")
	}
}

func TestDecline(t *testing.T) {
	ts := newTestServer(t, nil)
	hw := "00:04:13:00:00:40"
	ack := ts.lease(hw)
	bad := ipOf(ack.msg)
	decl, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(hw)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(bad.AsSlice())), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))))
	if ts.do(decl) != nil {
		t.Fatal("DECLINE was answered")
	}
	if again := ts.lease(hw); ipOf(again.msg) == bad {
		t.Fatal("declined address offered again to the same client")
	}
	// Nobody gets it during the quarantine, even when asking for it.
	off := ts.do(discover("00:04:13:00:00:41", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(bad.AsSlice()))))
	if ipOf(off.msg) == bad {
		t.Fatal("declined address offered during quarantine")
	}
	// After the quarantine it returns to the pool.
	ts.now = func() time.Time { return time.Now().Add(DefaultDeclineTime + time.Minute) }
	off = ts.do(discover("00:04:13:00:00:42", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(bad.AsSlice()))))
	if ipOf(off.msg) != bad {
		t.Fatalf("after quarantine: offered %v, want %v", ipOf(off.msg), bad)
	}
	if l, _ := LoadLeases(ts.opts.Load().StateDir); !hasState(l, bad, StateDeclined) {
		t.Errorf("decline not persisted: %v", l)
	}
}

func hasState(l []Lease, ip netip.Addr, state string) bool {
	for _, x := range l {
		if x.IP == ip && x.State == state {
			return true
		}
	}
	return false
}

func TestPoolExhaustionAndExpiry(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.PoolEnd = netip.MustParseAddr("10.77.0.102") })
	for i := 0; i < 3; i++ {
		ts.lease(net.HardwareAddr{0, 4, 0x13, 0, 2, byte(i)}.String())
	}
	if r := ts.do(discover("00:04:13:00:02:09")); r != nil {
		t.Fatalf("exhausted pool answered %v", r)
	}
	if used, total := ts.PoolUsage(); used != 3 || total != 3 {
		t.Errorf("usage %d/%d", used, total)
	}
	// Expired leases are reclaimed.
	ts.now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	if r := ts.do(discover("00:04:13:00:02:09")); r == nil {
		t.Fatal("expired lease not reclaimed")
	}
	if used, _ := ts.PoolUsage(); used != 0 {
		t.Errorf("usage after expiry %d", used)
	}
}

func TestReservations(t *testing.T) {
	resIP := netip.MustParseAddr("10.77.0.50")
	ts := newTestServer(t, func(o *Options) {
		o.Reservations = []Reservation{{MAC: phone.MAC{0, 4, 0x13, 0xa1, 0x1f, 0xa7}, IP: resIP, Hostname: "reception"},
			{MAC: phone.MAC{0, 4, 0x13, 0xa1, 0x1f, 0xa8}, IP: netip.MustParseAddr("10.77.0.100")}}
	})
	off := ts.do(discover("00:04:13:a1:1f:a7", dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.150")))))
	if off == nil || ipOf(off.msg) != resIP {
		t.Fatalf("reserved client offered %v", off)
	}
	ack := ts.lease("00:04:13:a1:1f:a7")
	if ipOf(ack.msg) != resIP || ack.msg.HostName() != "reception" {
		t.Fatalf("reserved client got %v %q", ipOf(ack.msg), ack.msg.HostName())
	}
	// A reserved address inside the pool is never handed to anyone else.
	for i := 0; i < 5; i++ {
		if ip := ipOf(ts.lease(net.HardwareAddr{2, 0, 0, 0, 3, byte(i)}.String()).msg); ip == netip.MustParseAddr("10.77.0.100") || ip == resIP {
			t.Fatalf("dynamic client got reserved %v", ip)
		}
	}
	ts.lease("02:00:00:00:03:99") // a client with a record: asking for another address gets a NAK
	req, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac("02:00:00:00:03:99")), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.100"))))
	if r := ts.do(req); r == nil || r.msg.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request for someone else's reservation: %v", r)
	}
}

func TestInform(t *testing.T) {
	ts := newTestServer(t, nil)
	inf, _ := dhcpv4.NewInform(mac("00:04:13:00:00:50"), net.ParseIP("10.77.0.33"))
	r := ts.do(inf)
	if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("INFORM: %v", r)
	}
	if ipOf(r.msg).IsValid() || r.msg.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.msg.Options.Has(dhcpv4.OptionRenewTimeValue) {
		t.Errorf("INFORM reply carries lease fields: %v", r.msg)
	}
	if r.to.String() != "10.77.0.33:68" || r.msg.TFTPServerName() == "" {
		t.Errorf("INFORM reply to %v, 66 %q", r.to, r.msg.TFTPServerName())
	}
	if l, _ := LoadLeases(ts.opts.Load().StateDir); len(l) != 0 {
		t.Errorf("INFORM created a lease: %v", l)
	}
}

func TestRelayAndSubnetSelection(t *testing.T) {
	// A relay-only pool: our address is not in the pool's subnet.
	ts := newTestServer(t, func(o *Options) {
		o.Subnet = netip.MustParsePrefix("10.78.0.0/16")
		o.PoolStart, o.PoolEnd = netip.MustParseAddr("10.78.1.0"), netip.MustParseAddr("10.78.255.254")
		o.Router = netip.Addr{}
	})
	if r := ts.do(discover("00:04:13:00:00:60")); r != nil {
		t.Fatalf("answered a direct client for a relay-only pool: %v", r)
	}
	if r := ts.do(discover("00:04:13:00:00:60", dhcpv4.WithGatewayIP(net.ParseIP("192.168.1.1")))); r != nil {
		t.Fatalf("answered a relay from another subnet: %v", r)
	}
	relay := dhcpv4.WithGatewayIP(net.ParseIP("10.78.0.2"))
	ack := ts.lease("00:04:13:00:00:60", relay)
	if ack.to.String() != "10.78.0.2:67" || !netip.MustParsePrefix("10.78.0.0/16").Contains(ipOf(ack.msg)) {
		t.Fatalf("relayed ACK %v to %v", ipOf(ack.msg), ack.to)
	}
}

func TestServePhones(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Serve = ServePhones
		o.Reservations = []Reservation{{MAC: phone.MAC{2, 0, 0, 0, 0, 0x77}, IP: netip.MustParseAddr("10.77.0.77")}}
	})
	tests := []struct {
		name   string
		hw     string
		mods   []dhcpv4.Modifier
		answer bool
	}{
		{"PC", "02:00:00:00:00:70", nil, false},
		{"PC with a vendor class", "02:00:00:00:00:71", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0"))}, false},
		{"Snom OUI", "00:04:13:00:00:72", nil, true},
		{"vendor class snomD785", "02:00:00:00:00:73", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785"))}, true},
		{"reserved MAC", "02:00:00:00:00:77", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := ts.do(discover(tt.hw, tt.mods...)); (r != nil) != tt.answer {
				t.Errorf("answered=%v, want %v", r != nil, tt.answer)
			}
		})
	}
}

func TestReplyDestinationRFC2131_4_1(t *testing.T) {
	ci := dhcpv4.WithClientIP(net.ParseIP("10.77.0.120"))
	gi := dhcpv4.WithGatewayIP(net.ParseIP("10.78.0.2"))
	bc := dhcpv4.WithBroadcast(true)
	hw := dhcpv4.WithHwAddr(mac("00:04:13:00:00:99"))
	zero := dhcpv4.WithHwAddr(mac("00:00:00:00:00:00"))
	yi := dhcpv4.WithYourIP(net.ParseIP("10.77.0.150"))
	tests := []struct {
		name  string
		req   []dhcpv4.Modifier
		reply dhcpv4.MessageType
		l2    bool
		want  string
	}{
		{"relayed ACK", []dhcpv4.Modifier{gi, hw}, dhcpv4.MessageTypeAck, true, "10.78.0.2:67"},
		{"relayed NAK", []dhcpv4.Modifier{gi, ci, hw}, dhcpv4.MessageTypeNak, true, "10.78.0.2:67"},
		{"NAK to a renewing client", []dhcpv4.Modifier{ci, hw}, dhcpv4.MessageTypeNak, true, "255.255.255.255:68"},
		{"NAK to a client without an address", []dhcpv4.Modifier{hw}, dhcpv4.MessageTypeNak, true, "255.255.255.255:68"},
		{"renewing ACK", []dhcpv4.Modifier{ci, hw}, dhcpv4.MessageTypeAck, true, "10.77.0.120:68"},
		{"broadcast flag", []dhcpv4.Modifier{bc, hw}, dhcpv4.MessageTypeOffer, true, "255.255.255.255:68"},
		{"no address, no flag: to the MAC", []dhcpv4.Modifier{hw}, dhcpv4.MessageTypeOffer, true, "10.77.0.150:68 at 00:04:13:00:00:99"},
		{"no address, no flag, no packet socket", []dhcpv4.Modifier{hw}, dhcpv4.MessageTypeOffer, false, "255.255.255.255:68"},
		{"zero chaddr", []dhcpv4.Modifier{zero}, dhcpv4.MessageTypeAck, true, "255.255.255.255:68"},
		{"multicast chaddr", []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac("01:00:5e:00:00:01"))}, dhcpv4.MessageTypeAck, true, "255.255.255.255:68"},
		{"other hardware type", []dhcpv4.Modifier{hw, dhcpv4.WithHWType(iana.HWTypeInfiniband)}, dhcpv4.MessageTypeAck, true, "255.255.255.255:68"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := dhcpv4.New(tt.req...)
			reply, _ := dhcpv4.New(dhcpv4.WithMessageType(tt.reply))
			if tt.reply != dhcpv4.MessageTypeNak {
				yi(reply)
			}
			if got := replyDestination(req, reply, 67, tt.l2).String(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	req, _ := dhcpv4.New()
	reply, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	if got := replyDestination(req, reply, 1067, false).String(); got != "255.255.255.255:1068" {
		t.Errorf("test port: %s", got)
	}
}

// TestL2UnicastThroughTheChain: a server with a packet socket sends the
// OFFER and ACK of a client without the broadcast flag to its MAC.
func TestL2UnicastThroughTheChain(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.l2unicast = true
	hw := "00:04:13:00:00:98"
	off := ts.do(discover(hw, dhcpv4.WithBroadcast(false)))
	ack := ts.do(requestFor(off.msg, dhcpv4.WithBroadcast(false)))
	for _, r := range []*sent{off, ack} {
		if r.hw.String() != hw || r.to != netip.AddrPortFrom(ipOf(ack.msg), 68) {
			t.Errorf("%v to %v at %v, want %v at %s", r.msg.MessageType(), r.to, r.hw, ipOf(ack.msg), hw)
		}
	}
}

func TestReloadKeepsLeases(t *testing.T) {
	ts := newTestServer(t, nil)
	ack := ts.lease("00:04:13:00:00:80")
	ip := ipOf(ack.msg)
	o := ts.Options()
	o.PoolStart, o.PoolEnd = netip.MustParseAddr("10.77.0.200"), netip.MustParseAddr("10.77.0.250")
	o.UpdateServer = "http://10.77.0.1/new/"
	if err := ts.Reload(o); err != nil {
		t.Fatal(err)
	}
	renew, _ := dhcpv4.NewRenewFromAck(ack.msg)
	r := ts.do(renew)
	if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeAck || ipOf(r.msg) != ip || r.msg.TFTPServerName() != "http://10.77.0.1/new/" {
		t.Fatalf("renewal after reload: %v", r)
	}
	if n := ipOf(ts.lease("00:04:13:00:00:81").msg); !n.IsValid() || n.Less(o.PoolStart) {
		t.Errorf("new client got %v outside the new pool", n)
	}
	o.Port = 1067
	if err := ts.Reload(o); err == nil {
		t.Error("port change accepted by reload")
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"ok", func(*Options) {}, ""},
		{"pool outside subnet", func(o *Options) { o.PoolEnd = netip.MustParseAddr("10.77.1.5") }, "outside the interface's subnet"},
		{"pool contains server", func(o *Options) { o.PoolStart = netip.MustParseAddr("10.77.0.1") }, "server's own address"},
		{"pool contains router", func(o *Options) { o.Router = netip.MustParseAddr("10.77.0.150") }, "router"},
		{"descending pool", func(o *Options) { o.PoolStart, o.PoolEnd = o.PoolEnd, o.PoolStart }, "ascending"},
		{"duplicate reservation IP", func(o *Options) {
			o.Reservations = []Reservation{{MAC: phone.MAC{0, 4, 0x13, 0, 0, 1}, IP: netip.MustParseAddr("10.77.0.50")},
				{MAC: phone.MAC{0, 4, 0x13, 0, 0, 2}, IP: netip.MustParseAddr("10.77.0.50")}}
		}, "reserved for both"},
		{"duplicate reservation MAC", func(o *Options) {
			o.Reservations = []Reservation{{MAC: phone.MAC{0, 4, 0x13, 0, 0, 1}, IP: netip.MustParseAddr("10.77.0.50")},
				{MAC: phone.MAC{0, 4, 0x13, 0, 0, 1}, IP: netip.MustParseAddr("10.77.0.51")}}
		}, "reserved twice"},
		{"bad serve", func(o *Options) { o.Serve = "some" }, "serve"},
		{"vlan", func(o *Options) { o.VoiceVLAN = 5000 }, "voice_vlan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOptions(t.TempDir())
			tt.mutate(&o)
			_, err := New(o, nil, nil)
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestJournalReplay(t *testing.T) {
	good := `{"ip":"10.77.0.100","mac":"000413000001","expiry":"2030-01-01T00:00:00Z","state":"bound"}` + "\n"
	tests := []struct {
		name    string
		in      string
		n       int
		wantErr bool
	}{
		{"empty", "", 0, false},
		{"one", good, 1, false},
		{"torn tail ignored", good + `{"ip":"10.77.0.1`, 1, false},
		{"corrupt middle", good + "garbage\n" + good, 1, true},
		{"later record wins", good + strings.Replace(good, "bound", "released", 1), 2, false},
		{"zeros end the records", good + "\x00\x00\x00", 1, false},
		{"nothing read past a zero", good + "\x00\x00" + good + "garbage\n", 1, false},
		{"torn before the zeros", good + `{"ip":"10.77.0.1` + "\x00\x00", 1, false},
		{"zero inside a record", good + `{"ip":"10.77` + "\x00" + `.0.1"}` + "\n", 1, false},
		{"empty lines skipped", "\n\n" + good + "\n\n\n" + good, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[netip.Addr]Lease{}
			n, err := replayJournal([]byte(tt.in), m)
			if n != tt.n || (err != nil) != tt.wantErr {
				t.Errorf("n=%d err=%v", n, err)
			}
			if tt.name == "later record wins" && m[netip.MustParseAddr("10.77.0.100")].State != StateReleased {
				t.Errorf("got %v", m)
			}
		})
	}
}

func TestSecondServerSameStateDir(t *testing.T) {
	o := baseOptions(t.TempDir())
	startTestServer(t, o)
	s2, err := New(o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.openState(&o); err == nil || !strings.Contains(err.Error(), "another snomprov DHCP server") {
		t.Fatalf("second server on the same leases: %v", err)
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.PoolEnd = netip.MustParseAddr("10.77.0.250") })
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			hw := net.HardwareAddr{0, 4, 0x13, 0, 4, byte(i)}
			d, _ := dhcpv4.NewDiscovery(hw)
			ts.handlePacket(d.ToBytes(), netip.MustParseAddrPort("0.0.0.0:68"))
		}(i)
	}
	wg.Wait()
	ts.mu.Lock()
	offers := append([]sent(nil), ts.out...)
	ts.out = nil
	ts.mu.Unlock()
	seen := map[netip.Addr]bool{}
	for _, o := range offers {
		if seen[ipOf(o.msg)] {
			t.Fatalf("address %v offered twice", ipOf(o.msg))
		}
		seen[ipOf(o.msg)] = true
	}
	for _, o := range offers {
		wg.Add(1)
		go func(o sent) {
			defer wg.Done()
			ts.handlePacket(requestFor(o.msg).ToBytes(), netip.MustParseAddrPort("0.0.0.0:68"))
		}(o)
	}
	wg.Wait()
	ts.store.barrier()
	l, _ := LoadLeases(ts.opts.Load().StateDir)
	if len(offers) != 100 || len(ts.out) != 100 || len(l) != 100 {
		t.Fatalf("offers %d acks %d leases on disk %d", len(offers), len(ts.out), len(l))
	}
}

func FuzzHandlePacket(f *testing.F) {
	d := discover("00:04:13:00:00:01", dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomD785")))
	f.Add(d.ToBytes())
	r := requestFor(d)
	r.UpdateOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.77.0.120")))
	f.Add(r.ToBytes())
	inf, _ := dhcpv4.NewInform(mac("00:04:13:00:00:02"), net.ParseIP("10.77.0.9"))
	f.Add(inf.ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	gi := dhcpv4.WithGatewayIP(net.IPv4(10, 30, 0, 1))
	f.Add(discover("00:04:13:00:00:03", gi).ToBytes())
	f.Add(discover("00:04:13:00:00:04", dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 254)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionSubnetSelection, []byte{10, 30, 0, 0}))).ToBytes())
	f.Add(discover("00:04:13:00:00:05", gi, dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(dhcpv4.LinkSelectionSubOption), []byte{10, 20, 0, 0})))).ToBytes())
	// One server for all inputs: state carried between inputs is part of
	// what is being fuzzed. It serves a VLAN and a relayed subnet too.
	ts := newTestServer(f, withSubnets)
	reserved := map[netip.Addr]bool{}
	po := ts.Options()
	for _, sn := range po.all() {
		for _, r := range sn.Reservations {
			reserved[r.IP] = true
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ts.mu.Lock()
		ts.out = nil
		ts.mu.Unlock()
		ts.handlePacket(b, netip.MustParseAddrPort("0.0.0.0:68"))
		ts.store.barrier()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, s := range ts.out {
			ip := ipOf(s.msg)
			if ip.IsValid() && !ts.pool.inPool(ip) && !reserved[ip] {
				t.Fatalf("offered %v outside the pools", ip)
			}
			// Address, mask and router are one subnet's.
			if mask, r := s.msg.SubnetMask(), s.msg.Router(); ip.IsValid() && mask != nil && len(r) == 1 {
				ones, _ := mask.Size()
				if rt, _ := netip.AddrFromSlice(r[0].To4()); !netip.PrefixFrom(ip, ones).Masked().Contains(rt) {
					t.Fatalf("offered %v/%d with router %v of another subnet", ip, ones, rt)
				}
			}
			if s.msg.OpCode != dhcpv4.OpcodeBootReply {
				t.Fatalf("reply is not a BOOTREPLY")
			}
		}
	})
}

func FuzzReplayJournal(f *testing.F) {
	f.Add([]byte(`{"ip":"10.77.0.100","mac":"000413000001","expiry":"2030-01-01T00:00:00Z","state":"bound"}` + "\n"))
	f.Add([]byte("\n\n{\"ip\":"))
	f.Add([]byte("{\"ip\":\"10.77.0.1\"}\n\x00\x00{\"ip\":\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := map[netip.Addr]Lease{}
		n, err := replayJournal(b, m)
		if len(m) > n {
			t.Fatalf("%d leases from %d records", len(m), n)
		}
		// Nothing past the first zero byte counts.
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			n2, err2 := replayJournal(b[:i], map[netip.Addr]Lease{})
			if n2 != n || (err == nil) != (err2 == nil) {
				t.Fatalf("with the tail %d records (err %v), without it %d (err %v)", n, err, n2, err2)
			}
		}
	})
}

func TestChainOrder(t *testing.T) {
	var names []string
	for _, st := range defaultChain() {
		names = append(names, st.name)
	}
	if strings.Join(names, ",") != "admit,lease,options,durable" || names[stageLease] != "lease" {
		t.Fatalf("chain %v, stageLease=%d", names, stageLease)
	}
}
