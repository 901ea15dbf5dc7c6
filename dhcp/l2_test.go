package dhcp

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/ipv4"
)

func TestUDP4Packet(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.77.0.1:67"), netip.MustParseAddrPort("10.77.0.150:68")
	for _, payload := range [][]byte{{}, {1}, []byte("odd"), make([]byte, 300)} {
		b := udp4Packet(payload, src, dst)
		h, err := ipv4.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != 4 || h.Len != 20 || h.TotalLen != len(b) || h.Protocol != 17 || h.TTL != 64 ||
			h.Src.String() != "10.77.0.1" || h.Dst.String() != "10.77.0.150" {
			t.Errorf("header %+v", h)
		}
		if sum16(0, b[:20]) != 0xffff {
			t.Errorf("IP header checksum does not verify: %x", b[:20])
		}
		udp := b[20:]
		if p := binary.BigEndian.Uint16(udp[0:]); p != 67 {
			t.Errorf("source port %d", p)
		}
		if p := binary.BigEndian.Uint16(udp[2:]); p != 68 {
			t.Errorf("destination port %d", p)
		}
		if n := binary.BigEndian.Uint16(udp[4:]); int(n) != 8+len(payload) {
			t.Errorf("UDP length %d for %d bytes", n, len(payload))
		}
		pseudo := append(append(append([]byte{}, b[12:20]...), 0, 17), byte(len(udp)>>8), byte(len(udp)))
		if sum16(sum16(0, pseudo), udp) != 0xffff {
			t.Errorf("UDP checksum does not verify for %d bytes", len(payload))
		}
		if string(udp[8:]) != string(payload) {
			t.Error("payload changed")
		}
	}
}
