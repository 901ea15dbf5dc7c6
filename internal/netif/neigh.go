package netif

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Neighbors answers "which MAC does this IPv4 address have on the LAN
// interface?" from the kernel's ARP table. A TCP client on the link always
// has an entry, so an address missing from the copy held here means the
// copy is older than the client: the table is read again, once for all
// the requests waiting at that moment. Found entries are trusted for
// maxAge. The caller asks only for addresses on the interface's subnet;
// anything else would read the file on every request.
type Neighbors struct {
	ifname string
	maxAge time.Duration
	open   func() (io.ReadCloser, error)
	now    func() time.Time

	cur atomic.Pointer[arpTable] // read without a lock on every request
	mu  sync.Mutex               // one reader of the file at a time
}

type arpTable struct {
	macs map[netip.Addr][6]byte
	read time.Time
}

// NewNeighbors reads the ARP table of interface ifname.
func NewNeighbors(ifname string) *Neighbors {
	return &Neighbors{ifname: ifname, maxAge: 5 * time.Second, open: openARP, now: time.Now}
}

func openARP() (io.ReadCloser, error) { return openProcNet("arp") }

// Lookup returns the MAC of a complete ARP entry for ip on the interface.
// false means the table has none: ip is not on this link, is IPv6, or the
// table cannot be read.
func (n *Neighbors) Lookup(ip netip.Addr) ([6]byte, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return [6]byte{}, false
	}
	asked := n.now()
	if t := n.cur.Load(); t != nil {
		if mac, ok := t.macs[ip]; ok && asked.Sub(t.read) <= n.maxAge {
			return mac, true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.cur.Load()
	if t == nil || t.read.Before(asked) {
		// Not read since this request asked: read it now.
		t = &arpTable{read: n.now()}
		if f, err := n.open(); err == nil {
			t.macs = parseARP(f, n.ifname)
			f.Close()
		}
		n.cur.Store(t)
	}
	mac, ok := t.macs[ip]
	return mac, ok
}

// parseARP reads the /proc/net/arp format and keeps the complete entries
// of one interface:
//
//	IP address       HW type     Flags       HW address            Mask     Device
//	10.0.0.23        0x1         0x2         00:04:13:a1:1f:a7     *        eth0
func parseARP(r io.Reader, ifname string) map[netip.Addr][6]byte {
	const atfCom = 0x2 // a complete entry
	out := map[netip.Addr][6]byte{}
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 6 || f[5] != ifname {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		flags, ferr := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32)
		hw, herr := net.ParseMAC(f[3])
		if err != nil || ferr != nil || herr != nil || len(hw) != 6 || flags&atfCom == 0 {
			continue
		}
		out[ip] = [6]byte(hw)
	}
	return out
}
