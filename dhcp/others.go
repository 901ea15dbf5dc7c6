package dhcp

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/snomprov/snomprov/internal/probe"
)

// otherServer is a DHCP server that answered our probe DISCOVER.
type otherServer struct {
	server  netip.Addr // its server identifier (option 54), else the packet source
	offered netip.Addr
	opt66   string
	opt67   string
}

// findOtherServers broadcasts a marked DISCOVER from the client port, twice,
// and collects every OFFER to it for OtherServerWait. Our own socket ignores
// the DISCOVER by its transaction ID and hardware address.
func (s *Server) findOtherServers(ctx context.Context) ([]otherServer, error) {
	o := s.opts.Load()
	disc, err := dhcpv4.New(
		dhcpv4.WithTransactionID(s.scoutXID),
		dhcpv4.WithHwAddr(s.scoutMAC),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("snomprov-other-server-check")),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName),
	)
	if err != nil {
		return nil, err
	}
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: o.Port}
	start := time.Now()
	if _, err := s.scout.WriteTo(disc.ToBytes(), dst); err != nil {
		return nil, err
	}
	seen := map[netip.Addr]bool{}
	var found []otherServer
	err = probe.Collect(ctx, s.scout, probe.Fixed(start.Add(o.OtherServerWait)), start.Add(o.OtherServerWait/2),
		func() time.Time {
			s.scout.WriteTo(disc.ToBytes(), dst) // a lost broadcast is common on busy links
			return time.Time{}
		},
		func(b []byte, from net.Addr) bool {
			m, err := dhcpv4.FromBytes(b)
			if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != s.scoutXID || m.MessageType() != dhcpv4.MessageTypeOffer {
				return false
			}
			sid := addrOf(m.ServerIdentifier())
			if ua, ok := from.(*net.UDPAddr); ok && !sid.IsValid() {
				sid = ua.AddrPort().Addr().Unmap()
			}
			if sid == o.ServerIP || seen[sid] {
				return false
			}
			seen[sid] = true
			found = append(found, otherServer{server: sid, offered: addrOf(m.YourIPAddr), opt66: m.TFTPServerName(), opt67: m.BootFileNameOption()})
			return false
		})
	return found, err
}
