package dhcp

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// initReboot is an INIT-REBOOT REQUEST: option 50, no server identifier, no ciaddr.
func initReboot(hw, ip string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac(hw)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))}, mods...)...)
	if err != nil {
		panic(err)
	}
	return req
}

func TestInitRebootRFC2131_4_3_2(t *testing.T) {
	const known = "00:04:13:00:07:01" // leases first in every case
	relay := dhcpv4.WithGatewayIP(net.ParseIP("10.77.0.2"))
	tests := []struct {
		name          string
		authoritative bool
		hw            string
		ip            string // "" = the known client's lease
		mods          []dhcpv4.Modifier
		want          dhcpv4.MessageType // MessageTypeNone: silence
		to            string
	}{
		{"§4.3.2 no record, free address: silent", false, "00:04:13:00:07:02", "10.77.0.150", nil, dhcpv4.MessageTypeNone, ""},
		{"§4.3.2 no record, relayed: silent", false, "00:04:13:00:07:02", "10.77.0.150", []dhcpv4.Modifier{relay}, dhcpv4.MessageTypeNone, ""},
		{"§4.3.2 no record, another client's address: silent", false, "00:04:13:00:07:02", "", nil, dhcpv4.MessageTypeNone, ""},
		{"§4.3.2 no record, outside the pool: silent", false, "00:04:13:00:07:02", "10.77.0.20", nil, dhcpv4.MessageTypeNone, ""},
		{"§4.3.2 wrong network: NAK", false, "00:04:13:00:07:02", "192.168.5.5", nil, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"§4.3.2 known client, its address: ACK", false, known, "", nil, dhcpv4.MessageTypeAck, "255.255.255.255:68"},
		{"§4.3.2 known client, relayed: ACK to the relay", false, known, "", []dhcpv4.Modifier{relay}, dhcpv4.MessageTypeAck, "10.77.0.2:67"},
		{"§4.3.2 known client, another address: NAK", false, known, "10.77.0.150", nil, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"§4.3.2 known client, another address, relayed: NAK to the relay", false, known, "10.77.0.150", []dhcpv4.Modifier{relay}, dhcpv4.MessageTypeNak, "10.77.0.2:67"},
		{"authoritative: no record, free address: ACK", true, "00:04:13:00:07:02", "10.77.0.150", nil, dhcpv4.MessageTypeAck, "255.255.255.255:68"},
		{"authoritative: no record, relayed: ACK", true, "00:04:13:00:07:02", "10.77.0.150", []dhcpv4.Modifier{relay}, dhcpv4.MessageTypeAck, "10.77.0.2:67"},
		{"authoritative: no record, another client's address: NAK", true, "00:04:13:00:07:02", "", nil, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"authoritative: known client moves to a free address: ACK", true, known, "10.77.0.150", nil, dhcpv4.MessageTypeAck, "255.255.255.255:68"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) { o.Authoritative = tt.authoritative })
			owned := ipOf(ts.lease(known).msg)
			ip := tt.ip
			if ip == "" {
				ip = owned.String()
			}
			r := ts.do(initReboot(tt.hw, ip, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, tt.mods...)...))
			if tt.want == dhcpv4.MessageTypeNone {
				if r != nil {
					t.Fatalf("want silence, got %v to %v", r.msg.MessageType(), r.to)
				}
				return
			}
			if r == nil || r.msg.MessageType() != tt.want {
				t.Fatalf("want %v, got %v", tt.want, r)
			}
			if r.to.String() != tt.to {
				t.Errorf("reply to %v, want %v", r.to, tt.to)
			}
			if tt.want == dhcpv4.MessageTypeAck && ipOf(r.msg).String() != ip {
				t.Errorf("ACK for %v, want %v", ipOf(r.msg), ip)
			}
		})
	}
}

// TestClientIDZeroChaddrRFC2131_4_2: a client identified by option 61 is
// served whatever its chaddr; without option 61 an all-zero chaddr is dropped.
func TestClientIDZeroChaddrRFC2131_4_2(t *testing.T) {
	const zero = "00:00:00:00:00:00"
	cid := func(id string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{0}, id...)))
	}
	t.Run("§4.2 DORA by client id, replies broadcast", func(t *testing.T) {
		ts := newTestServer(t, nil)
		a := ts.lease(zero, cid("phone-a"))
		b := ts.lease(zero, cid("phone-b"))
		if ipOf(a.msg) == ipOf(b.msg) {
			t.Fatalf("two client ids with the same zero chaddr share %v", ipOf(a.msg))
		}
		if a.to.String() != "255.255.255.255:68" {
			t.Errorf("ACK to %v: a zero chaddr cannot be unicast to", a.to)
		}
		if got := a.msg.Options.Get(dhcpv4.OptionClientIdentifier); string(got) != "\x00phone-a" {
			t.Errorf("option 61 not echoed (RFC 6842): %q", got)
		}
		if again := ts.lease(zero, cid("phone-a")); ipOf(again.msg) != ipOf(a.msg) {
			t.Errorf("returning client id got %v, want %v", ipOf(again.msg), ipOf(a.msg))
		}
		l, _ := LoadLeases(ts.opts.Load().StateDir)
		if len(l) != 2 || l[0].ClientID == "" {
			t.Errorf("leases on disk: %v", l)
		}
	})
	t.Run("§4.3.2 NAK by client id", func(t *testing.T) {
		ts := newTestServer(t, nil)
		a := ts.lease(zero, cid("phone-a"))
		r := ts.do(initReboot(zero, "10.77.0.190", cid("phone-a")))
		if r == nil || r.msg.MessageType() != dhcpv4.MessageTypeNak || r.to.String() != "255.255.255.255:68" {
			t.Fatalf("want a broadcast NAK, got %v", r)
		}
		if r := ts.do(initReboot(zero, ipOf(a.msg).String(), cid("phone-a"))); r == nil || r.msg.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("INIT-REBOOT onto its own lease: %v", r)
		}
	})
	t.Run("§4.4.6 RELEASE by client id", func(t *testing.T) {
		ts := newTestServer(t, nil)
		a := ts.lease(zero, cid("phone-a"))
		ts.lease(zero, cid("phone-b"))
		rel, _ := dhcpv4.NewReleaseFromACK(a.msg, cid("phone-a"))
		if r := ts.do(rel); r != nil {
			t.Fatalf("RELEASE answered: %v", r)
		}
		l, _ := LoadLeases(ts.opts.Load().StateDir)
		if !hasState(l, ipOf(a.msg), StateReleased) || len(l) != 2 {
			t.Errorf("after RELEASE: %v", l)
		}
	})
	t.Run("§4.2 other hardware type with client id", func(t *testing.T) {
		ts := newTestServer(t, nil)
		d := discover(zero, cid("ib-host"), dhcpv4.WithHWType(iana.HWTypeInfiniband), dhcpv4.WithHwAddr(net.HardwareAddr{}))
		if r := ts.do(d); r == nil || r.msg.MessageType() != dhcpv4.MessageTypeOffer || r.to.String() != "255.255.255.255:68" {
			t.Fatalf("want a broadcast OFFER, got %v", r)
		}
	})
	t.Run("§4.2 zero chaddr without client id: dropped", func(t *testing.T) {
		ts := newTestServer(t, nil)
		if r := ts.do(discover(zero)); r != nil {
			t.Fatalf("answered a client with no identity: %v", r)
		}
	})
}

func TestInformRFC2131_4_3_5(t *testing.T) {
	ts := newTestServer(t, nil)
	tests := []struct {
		name   string
		ciaddr string
		to     string // "" = no answer
	}{
		{"§4.3.5 ciaddr set: ACK to ciaddr", "10.77.0.33", "10.77.0.33:68"},
		{"Table 5 ciaddr 0.0.0.0: no answer", "0.0.0.0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inf, _ := dhcpv4.NewInform(mac("00:04:13:00:00:51"), net.ParseIP(tt.ciaddr))
			r := ts.do(inf)
			switch {
			case tt.to == "" && r != nil:
				t.Fatalf("answered: %v to %v", r.msg.MessageType(), r.to)
			case tt.to != "" && (r == nil || r.to != netip.MustParseAddrPort(tt.to)):
				t.Fatalf("want ACK to %v, got %v", tt.to, r)
			}
		})
	}
}
