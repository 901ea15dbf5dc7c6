package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// l2conn sends replies to a client that has no address yet straight to its
// MAC (RFC 2131 §4.1: unicast to chaddr/yiaddr when the broadcast flag is
// clear), through a packet socket on the LAN interface. A UDP socket cannot:
// the kernel would ARP for yiaddr, which nobody holds yet. The socket only
// sends: a BPF program that accepts nothing keeps the kernel from copying
// every IP packet of the LAN into it.
type l2conn struct {
	conn *packet.Conn
}

func openL2(iface string) (*l2conn, error) {
	if iface == "" {
		return nil, errors.New("no LAN interface is set")
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s is not an Ethernet interface", iface)
	}
	dropAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_IP, &packet.Config{Filter: dropAll})
	if err != nil {
		return nil, err
	}
	return &l2conn{conn: c}, nil
}

func (c *l2conn) close() { c.conn.Close() }

// send wraps payload in IPv4 and UDP headers from src to dst and sends the
// frame to hw; the kernel adds the Ethernet header (SOCK_DGRAM).
func (c *l2conn) send(payload []byte, src, dst netip.AddrPort, hw net.HardwareAddr) error {
	_, err := c.conn.WriteTo(udp4Packet(payload, src, dst), &packet.Addr{HardwareAddr: hw})
	return err
}

// udp4Packet builds an IPv4 datagram carrying one UDP datagram (RFC 791,
// RFC 768). Neither x/net/ipv4 (whose Header.Marshal leaves the checksum to
// the caller) nor insomniacslk/dhcp (whose builder is unexported and only
// broadcasts) offers this, so the two headers are written here.
func udp4Packet(payload []byte, src, dst netip.AddrPort) []byte {
	const ipLen, udpLen = 20, 8
	b := make([]byte, ipLen+udpLen+len(payload))
	ip, udp := b[:ipLen], b[ipLen:ipLen+udpLen]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^sum16(0, ip))

	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(b[ipLen+udpLen:], payload)
	// Checksum over the pseudo-header (addresses, protocol, length) and the datagram.
	var pseudo [12]byte
	copy(pseudo[0:4], s4[:])
	copy(pseudo[4:8], d4[:])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(udpLen+len(payload)))
	cs := ^sum16(sum16(0, pseudo[:]), b[ipLen:])
	if cs == 0 {
		cs = 0xffff // zero means "no checksum" (RFC 768)
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	return b
}

// sum16 adds b to the one's-complement sum acc (RFC 1071), folded to 16 bits.
func sum16(acc uint16, b []byte) uint16 {
	s := uint32(acc)
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
