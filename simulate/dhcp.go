package simulate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/snomprov/snomprov/phone"
)

// DHCPURL is the provisioning URL a DHCP reply hands out, with the raw
// values it was built from.
type DHCPURL struct {
	Opt66, Opt67     string // direct options 66 (TFTP server name) and 67 (bootfile)
	Sub66, Sub67     string // the same codes inside option 43 (Snom: they win)
	Opt43Unparseable bool   // option 43 present but not code/len/value
	URL              string // the URL a Snom phone would use; empty if none
	Note             string // how URL was derived, when not obvious
}

// ProvisioningURL derives the setting URL a Snom phone takes from a DHCP
// OFFER or ACK: options 66/67, overridden one by one by sub-options 66/67
// of option 43 (snom-provisioning.md §2.2), joined with "/". A bare host in
// 66 is taken as http://host (assumption: current Snom firmware provisions
// over HTTP; TFTP is legacy).
func ProvisioningURL(m *dhcpv4.DHCPv4) DHCPURL {
	var u DHCPURL
	if m == nil {
		return u
	}
	u.Opt66 = cleanString(m.Options.Get(dhcpv4.OptionTFTPServerName))
	u.Opt67 = cleanString(m.Options.Get(dhcpv4.OptionBootfileName))
	if raw := m.Options.Get(dhcpv4.OptionVendorSpecificInformation); len(raw) > 0 {
		subs, ok := ParseOption43(raw)
		if !ok {
			u.Opt43Unparseable = true
		}
		u.Sub66, u.Sub67 = subs[66], subs[67]
	}
	server, file := u.Opt66, u.Opt67
	if u.Sub66 != "" {
		server = u.Sub66
	}
	if u.Sub67 != "" {
		file = u.Sub67
	}
	u.URL, u.Note = joinServerFile(server, file)
	return u
}

// joinServerFile joins option 66 and 67 the way the Snom examples do:
// 66=http://test + 67=snom/settings.php → http://test/snom/settings.php.
func joinServerFile(server, file string) (url, note string) {
	switch {
	case server == "" && file == "":
		return "", ""
	case server == "":
		if hasScheme(file) {
			return file, "option 67 alone is a full URL"
		}
		return "", "option 67 without option 66 names no server"
	}
	if !hasScheme(server) {
		note = "option 66 has no scheme; assumed http://"
		server = "http://" + server
	}
	if file == "" {
		return server, note
	}
	if hasScheme(file) {
		return file, "option 67 is a full URL and replaces option 66"
	}
	return strings.TrimRight(server, "/") + "/" + strings.TrimLeft(file, "/"), note
}

func hasScheme(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], "/.?#")
}

// cleanString drops the NUL terminators some servers append.
func cleanString(b []byte) string {
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
}

// ParseOption43 splits vendor option 43 into code → value, values stripped
// of Snom's trailing NUL. ok is false if the bytes are not a clean
// code/len/value list (what was read before the damage is still returned).
func ParseOption43(b []byte) (subs map[byte]string, ok bool) {
	subs = map[byte]string{}
	for i := 0; i < len(b); {
		code := b[i]
		if code == 0 { // pad
			i++
			continue
		}
		if code == 255 { // end
			return subs, true
		}
		if i+1 >= len(b) {
			return subs, false
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return subs, false
		}
		subs[code] = cleanString(b[i+2 : i+2+n])
		i += 2 + n
	}
	return subs, true
}

// dhcpResult is what the DHCP step learned.
type dhcpResult struct {
	Leased   netip.Addr
	ServerID netip.Addr
	URL      DHCPURL
}

// SnomDHCPModifiers make a DISCOVER/REQUEST look like a Snom phone's: vendor
// class = model, broadcast flag set (the simulator cannot receive a unicast
// to a MAC that is not the interface's), and a request for 43/66/67.
func SnomDHCPModifiers(model string) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(model)),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(
			dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionHostName, dhcpv4.OptionDomainName, dhcpv4.OptionNTPServers,
			dhcpv4.OptionTimeOffset, dhcpv4.OptionVendorSpecificInformation,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName,
		),
	}
}

// maxNAKs is how many NAKs a simulated phone takes before it gives up.
const maxNAKs = 2

// runDHCP does DISCOVER → OFFER → REQUEST → ACK for one simulated phone,
// over the run's shared socket mux.
func runDHCP(ctx context.Context, mux *dhcpMux, iface string, mac phone.MAC, model string, timeout time.Duration) (dhcpResult, error) {
	var r dhcpResult
	c, err := nclient4.NewWithConn(mux.conn(mac), net.HardwareAddr(mac[:]),
		nclient4.WithTimeout(timeout/4),
		nclient4.WithRetry(3))
	if err != nil {
		return r, fmt.Errorf("DHCP client for %s: %w", mac, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A NAK restarts the exchange from DISCOVER, as a phone does (RFC 2131
	// §4.4.4); in a boot storm a server that does not reserve what it
	// offers NAKs the second of two phones it offered the same address.
	var lease *nclient4.Lease
	var nak *nclient4.ErrNak
	for try := 0; ; try++ {
		lease, err = c.Request(ctx, SnomDHCPModifiers(model)...)
		if !errors.As(err, &nak) || try == maxNAKs || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		switch {
		case errors.As(err, &nak):
			return r, fmt.Errorf("the DHCP server %s refused the REQUEST (NAK: %q), %d times; its pool may be full or the address is reserved", serverOf(nak.Nak), nak.Nak.Message(), maxNAKs+1)
		case errors.Is(err, nclient4.ErrNoResponse), errors.Is(err, context.DeadlineExceeded):
			return r, fmt.Errorf("no DHCP server answered within %s; enable [dhcp] in snomprov or check the cabling/VLAN of %s. A DHCP server on this same host cannot hear simulate's DHCP: run simulate on another machine of the LAN, or skip DHCP with --no-dhcp", timeout, iface)
		}
		return r, fmt.Errorf("DHCP exchange failed: %w", err)
	}
	r.Leased, _ = netip.AddrFromSlice(lease.ACK.YourIPAddr.To4())
	r.ServerID, _ = netip.AddrFromSlice(lease.ACK.ServerIdentifier().To4())
	r.URL = ProvisioningURL(lease.ACK)
	return r, nil
}

func serverOf(m *dhcpv4.DHCPv4) string {
	if id := m.ServerIdentifier(); id != nil {
		return id.String()
	}
	return "(no server id)"
}

// rawSocketError explains the usual reasons an AF_PACKET socket fails.
func rawSocketError(iface string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "operation not permitted"):
		return fmt.Errorf("cannot open a raw DHCP socket on %s: %w; run as root or give the binary CAP_NET_RAW, or skip DHCP with --no-dhcp", iface, err)
	case strings.Contains(msg, "no such network interface"):
		return fmt.Errorf("interface %q does not exist: %w; list interfaces with `ip link`", iface, err)
	}
	return fmt.Errorf("cannot open a raw DHCP socket on %s: %w", iface, err)
}
