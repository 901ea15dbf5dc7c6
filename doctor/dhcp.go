package doctor

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/snomprov/snomprov/internal/probe"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/simulate"
)

// DHCPServer is one server that answered a DISCOVER.
type DHCPServer struct {
	ServerID    netip.Addr       `json:"server_id"`        // option 54
	From        netip.Addr       `json:"from"`             // IP source of the OFFER
	Offered     netip.Addr       `json:"offered,omitzero"` // yiaddr to the Snom DISCOVER
	AnswersSnom bool             `json:"answers_snom"`     // answered the Snom-looking DISCOVER
	AnswersPC   bool             `json:"answers_other"`    // answered the plain DISCOVER
	Snom        simulate.DHCPURL `json:"snom"`             // 66/67/43 handed to the phone
	Other       simulate.DHCPURL `json:"other,omitzero"`   // 66/67/43 handed to the plain client
	Self        bool             `json:"self"`             // one of this host's addresses
	Router      netip.Addr       `json:"router,omitzero"`  // option 3 to the phone
	Lease       time.Duration    `json:"lease,omitempty"`  // option 51 to the phone
}

// Name is how the report refers to the server.
func (s DHCPServer) Name() string {
	if s.ServerID.IsValid() && s.From.IsValid() && s.ServerID != s.From {
		return fmt.Sprintf("%s (via %s)", s.ServerID, s.From)
	}
	if s.ServerID.IsValid() {
		return s.ServerID.String()
	}
	return s.From.String()
}

// pairWait is how long a server that answered one of the two DISCOVERs is
// given to answer the other.
const pairWait = 5 * time.Second

// discoverAll broadcasts two DISCOVERs — one that looks like a Snom phone
// (Snom OUI chaddr, option 60 = model) and one that looks like a PC
// (locally administered chaddr, no vendor class) — and collects every OFFER
// for wait. It never sends a REQUEST, so no lease is taken.
func discoverAll(ctx context.Context, iface, model string, wait time.Duration) ([]DHCPServer, error) {
	conn, err := nclient4.NewRawUDPConn(iface, nclient4.ClientPort)
	if err != nil {
		return nil, fmt.Errorf("cannot open a raw DHCP socket on %s: %w; run doctor as root or give it CAP_NET_RAW", iface, err)
	}
	defer conn.Close()

	snomMAC := simulate.RandomSnomMAC()
	pcMAC := phone.MAC{0x02}
	_, _ = rand.Read(pcMAC[1:])

	snom, err := dhcpv4.NewDiscovery(net.HardwareAddr(snomMAC[:]), simulate.SnomDHCPModifiers(model)...)
	if err != nil {
		return nil, fmt.Errorf("build DISCOVER: %w", err)
	}
	pc, err := dhcpv4.NewDiscovery(net.HardwareAddr(pcMAC[:]), dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName))
	if err != nil {
		return nil, fmt.Errorf("build DISCOVER: %w", err)
	}
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: nclient4.ServerPort}
	send := func() error {
		for _, m := range []*dhcpv4.DHCPv4{snom, pc} {
			if _, err := conn.WriteTo(m.ToBytes(), bcast); err != nil {
				return fmt.Errorf("send DISCOVER on %s: %w; check that the interface is up", iface, err)
			}
		}
		return nil
	}
	if err := send(); err != nil {
		return nil, err
	}

	// A server that answered one DISCOVER gets pairWait to answer the
	// other: dnsmasq pings each offered address for 3 s and handles the
	// two DISCOVERs one after the other.
	start := time.Now()
	deadline, hardCap := start.Add(wait), start.Add(wait+pairWait)
	servers := map[netip.Addr]*DHCPServer{}
	firstAnswer := map[netip.Addr]time.Time{}
	// One retransmission halfway, same xid, for a lost broadcast.
	resend := func() time.Time { _ = send(); return time.Time{} }
	err = probe.Collect(ctx, conn, func() time.Time { return deadline }, start.Add(wait/2), resend, func(b []byte, from net.Addr) bool {
		m, err := dhcpv4.FromBytes(b)
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.MessageType() != dhcpv4.MessageTypeOffer {
			return false
		}
		isSnom := m.TransactionID == snom.TransactionID && sameHW(m.ClientHWAddr, snomMAC[:])
		isPC := m.TransactionID == pc.TransactionID && sameHW(m.ClientHWAddr, pcMAC[:])
		if !isSnom && !isPC {
			return false
		}
		src := netip.Addr{}
		if ua, ok := from.(*net.UDPAddr); ok {
			src, _ = netip.AddrFromSlice(ua.IP.To4())
		}
		id, _ := netip.AddrFromSlice(m.ServerIdentifier().To4())
		key := id
		if !key.IsValid() {
			key = src
		}
		s := servers[key]
		if s == nil {
			s = &DHCPServer{ServerID: id, From: src}
			servers[key] = s
		}
		if isSnom {
			s.AnswersSnom = true
			s.Offered, _ = netip.AddrFromSlice(m.YourIPAddr.To4())
			s.Snom = simulate.ProvisioningURL(m)
			if r := m.Router(); len(r) > 0 {
				s.Router, _ = netip.AddrFromSlice(r[0].To4())
			}
			s.Lease = m.IPAddressLeaseTime(0)
		} else {
			s.AnswersPC = true
			s.Other = simulate.ProvisioningURL(m)
		}
		if _, seen := firstAnswer[key]; !seen {
			firstAnswer[key] = time.Now()
		}
		if s.AnswersSnom != s.AnswersPC {
			if ext := firstAnswer[key].Add(pairWait); ext.After(deadline) {
				deadline = ext
				if deadline.After(hardCap) {
					deadline = hardCap
				}
			}
		}
		return false
	})
	if err != nil {
		return sortServers(servers), fmt.Errorf("receive OFFERs: %w", err)
	}
	return sortServers(servers), nil
}

func sameHW(a net.HardwareAddr, b []byte) bool {
	return len(a) >= len(b) && string(a[:len(b)]) == string(b)
}

func sortServers(m map[netip.Addr]*DHCPServer) []DHCPServer {
	out := make([]DHCPServer, 0, len(m))
	for _, s := range m {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
