package doctor

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/simulate"
)

const procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  124: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0
  125: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0
  bad line
  126: zz:0043 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0
`

func TestParseProcNet(t *testing.T) {
	got, err := parseProcNet(strings.NewReader(procNetUDP))
	if err != nil {
		t.Fatal(err)
	}
	want := []procSocket{{Port: 67, State: 7, Inode: 4242}, {Port: 5060, State: 7, Inode: 4243}, {Port: 80, State: 0x0A, Inode: 99}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func FuzzParseProcNet(f *testing.F) {
	f.Add([]byte(procNetUDP))
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _ := parseProcNet(strings.NewReader(string(b)))
		for _, s := range socks {
			if s.Port < 0 || s.Port > 65535 || s.State > 255 {
				t.Fatalf("impossible socket %+v", s)
			}
		}
	})
}

// TestPortOwnersNamesThisProcess opens sockets on loopback and checks that
// doctor finds this very process holding them.
func TestPortOwnersNamesThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	udpPort := uc.LocalAddr().(*net.UDPAddr).Port
	// A port nobody holds: bind and release one.
	tmp, _ := net.Listen("tcp4", "127.0.0.1:0")
	freePort := tmp.Addr().(*net.TCPAddr).Port
	tmp.Close()

	owners, err := portOwners([]int{udpPort}, []int{tcpPort, freePort})
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 3 {
		t.Fatalf("owners: %+v", owners)
	}
	for _, o := range owners[:2] {
		if o.Free || !slices.Contains(o.PIDs, os.Getpid()) || o.Process == "" {
			t.Errorf("%s: %+v, want this process (pid %d)", o, o, os.Getpid())
		}
	}
	if !owners[2].Free {
		t.Errorf("released port reported in use: %+v", owners[2])
	}
}

func TestRecommend(t *testing.T) {
	self := "http://10.77.0.1:8080/"
	offerURL := func(u string) simulate.DHCPURL { return simulate.DHCPURL{Opt66: u, URL: u} }
	tests := []struct {
		name string
		rep  Report
		want Mode
	}{
		{"empty LAN", Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")}}, ModeSnomprovDHCP},
		{"router answers all, multicast ok", Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
			DHCPServers: []DHCPServer{{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersSnom: true, AnswersPC: true}}}, ModePnPOnly},
		{"router answers all, no multicast", Report{Multicast: false, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
			DHCPServers: []DHCPServer{{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersSnom: true, AnswersPC: true}}}, ModeRouter},
		{"router answers all, rival PnP", Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
			DHCPServers: []DHCPServer{{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersSnom: true, AnswersPC: true}},
			Responders:  []Responder{{PnPAnswer: simulate.PnPAnswer{Responder: netip.MustParseAddr("10.77.0.9"), URL: "http://10.77.0.9/"}}}}, ModeRouter},
		{"router ignores phones", Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
			DHCPServers: []DHCPServer{{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersPC: true}}}, ModePhonesOnlyDHCP},
		{"router already configured", Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
			DHCPServers: []DHCPServer{{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersSnom: true, AnswersPC: true, Snom: offerURL(self)}}}, ModeRouter},
	}
	for _, tt := range tests {
		rep := tt.rep
		d := &doctor{o: Options{SelfURL: self}, rep: &rep, local: map[netip.Addr]bool{netip.MustParseAddr("10.77.0.1"): true}, selfHost: "10.77.0.1"}
		d.recommend()
		if rep.Mode != tt.want || rep.Recommendation == "" {
			t.Errorf("%s: mode %q (%s), want %q", tt.name, rep.Mode, rep.Recommendation, tt.want)
		}
	}
}

func TestNoModeWithoutDHCPCheck(t *testing.T) {
	rep := Report{Multicast: true, Addresses: []netip.Addr{netip.MustParseAddr("10.77.0.1")}}
	d := &doctor{rep: &rep, local: map[netip.Addr]bool{}}
	d.judgeDHCP(errors.New("cannot open a raw DHCP socket on eth0: operation not permitted"))
	d.recommend()
	if rep.Mode != "" || rep.Problems() != 1 || !strings.Contains(rep.Recommendation, "did not run") {
		t.Errorf("mode %q, %d problems, %q", rep.Mode, rep.Problems(), rep.Recommendation)
	}
}

func TestJudgeDHCP(t *testing.T) {
	rival := DHCPServer{ServerID: netip.MustParseAddr("10.77.0.254"), AnswersSnom: true, AnswersPC: true, Snom: simulate.DHCPURL{Opt66: "http://10.77.0.9/", URL: "http://10.77.0.9/"}}
	second := DHCPServer{ServerID: netip.MustParseAddr("10.77.0.253"), AnswersSnom: true}
	selfPort := []PortOwner{{Proto: "udp", Port: 67, Self: true}}
	tests := []struct {
		name         string
		servers      []DHCPServer
		ports        []PortOwner
		lanNotServed bool
		problems     int
		mention      string
	}{
		{"one rival sending phones elsewhere", []DHCPServer{rival}, nil, false, 0, "sends phones to http://10.77.0.9/"},
		{"two servers answer phones", []DHCPServer{rival, second}, nil, false, 1, "2 DHCP servers answer phones"},
		{"none", nil, nil, false, 0, "no DHCP server answered"},
		{"snomprov serves DHCP beside a rival", []DHCPServer{rival}, selfPort, false, 1, "snomprov serves DHCP here and 10.77.0.254 answers phones too"},
		{"snomprov serves only subnets beside the LAN's server", []DHCPServer{rival}, selfPort, true, 0, "snomprov serves only its [[dhcp.subnets]] here"},
	}
	for _, tt := range tests {
		rep := Report{DHCPServers: tt.servers, Ports: tt.ports}
		d := &doctor{o: Options{SelfURL: "http://10.77.0.1/", LANNotServed: tt.lanNotServed}, rep: &rep, local: map[netip.Addr]bool{}, selfHost: "10.77.0.1"}
		d.judgeDHCP(nil)
		var all []string
		for _, f := range rep.Findings {
			all = append(all, f.Detail)
		}
		if rep.Problems() != tt.problems || !strings.Contains(strings.Join(all, "\n"), tt.mention) {
			t.Errorf("%s: %d problems, findings:\n%s", tt.name, rep.Problems(), strings.Join(all, "\n"))
		}
	}
}
