package dhcp

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
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
	deadline := time.Now().Add(o.OtherServerWait)
	stop := context.AfterFunc(ctx, func() { s.scout.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := s.scout.WriteTo(disc.ToBytes(), dst); err != nil {
		return nil, err
	}
	resent := false
	seen := map[netip.Addr]bool{}
	var found []otherServer
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		next := deadline
		if !resent {
			next = time.Now().Add(o.OtherServerWait / 2)
		}
		s.scout.SetReadDeadline(next)
		n, from, err := s.scout.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				if !resent {
					resent = true
					s.scout.WriteTo(disc.ToBytes(), dst) // a lost broadcast is common on busy links
				}
				continue
			}
			return found, err
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != s.scoutXID || m.MessageType() != dhcpv4.MessageTypeOffer {
			continue
		}
		sid := addrOf(m.ServerIdentifier())
		if !sid.IsValid() {
			sid = from.Addr().Unmap()
		}
		if sid == o.ServerIP || seen[sid] {
			continue
		}
		seen[sid] = true
		found = append(found, otherServer{server: sid, offered: addrOf(m.YourIPAddr), opt66: m.TFTPServerName(), opt67: m.BootFileNameOption()})
	}
	return found, nil
}
