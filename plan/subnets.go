package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/internal/field"
)

// ownSubnetKeys are the [[dhcp.subnets]] keys a subnet never inherits from
// [dhcp]: they are where it is on the network.
var ownSubnetKeys = map[string]bool{"": true, "network": true, "interface": true, "pool": true, "router": true, "reservations": true}

// subnets translates [[dhcp.subnets]] into the DHCP server's subnet
// entries: each inherits from [dhcp] (primary, as translated) what it does
// not set itself, and gets our address on it. A local subnet's is the
// address of its interface in its network (looked up on this machine); a
// relayed subnet's is the LAN address, the one relays forward to, and its
// default option 66 is the appliance's URL there (server.advertise or the
// LAN address). When the section is off (enabled = false) the entries are
// checked without this machine's interfaces.
func (c *compiler) subnets(primary dhcp.Options, enabled bool) []dhcp.Options {
	cfg := c.cfg
	var out []dhcp.Options
	var ifs map[string][]netip.Prefix
	lookedUp := false
	for i, sn := range cfg.DHCP.Subnets {
		at := fmt.Sprintf("dhcp.subnets[%d]", i)
		own := func(k string) bool { return cfg.IsSet(at + "." + k) }
		o := subnetOptions(sn.DHCPSubnetOptions, own)
		o.Interface, o.Subnet = sn.Interface, sn.Network
		o.DNS = inherit(own("dns"), o.DNS, primary.DNS)
		o.NTP = inherit(own("ntp"), o.NTP, primary.NTP)
		o.Domain = inherit(own("domain"), o.Domain, primary.Domain)
		o.LeaseTime = inherit(own("lease_time"), o.LeaseTime, primary.LeaseTime)
		o.TimeOffset = inherit(own("time_offset"), o.TimeOffset, primary.TimeOffset)
		o.UpdateFilename = inherit(own("update_filename"), o.UpdateFilename, primary.UpdateFilename)
		o.VendorOptions = inherit(own("vendor_options"), o.VendorOptions, primary.VendorOptions)
		o.VoiceVLAN = inherit(own("voice_vlan"), o.VoiceVLAN, primary.VoiceVLAN)
		o.VoicePriority = inherit(own("voice_priority"), o.VoicePriority, primary.VoicePriority)
		o.ExtraOptions = mergeOptions(o.ExtraOptions, primary.ExtraOptions)
		if enabled && c.rt.Interfaces != nil && !lookedUp {
			lookedUp = true
			var err error
			if ifs, err = c.rt.Interfaces(); err != nil {
				c.skipped(fmt.Sprintf("the [[dhcp.subnets]] against this machine's interfaces (%v)", err))
			}
		}
		switch {
		case !enabled:
		case sn.Interface != "":
			o.ServerIP = c.localSubnetAddr(at, sn, ifs)
			if o.ServerIP.IsValid() {
				c.subnetAddrs = append(c.subnetAddrs, o.ServerIP)
			}
		default:
			if c.plan.LAN.Known() {
				o.ServerIP = c.plan.LAN.Prefix.Addr()
			}
			c.notLocal(at, sn, ifs)
		}
		switch {
		case own("update_server"):
			o.UpdateServer = sn.UpdateServer
		case cfg.IsSet("dhcp.update_server") || c.urlBroken:
			o.UpdateServer = cfg.DHCP.UpdateServer
		case sn.Interface != "" && o.ServerIP.IsValid():
			o.UpdateServer = cfg.SettingURL(o.ServerIP)
		default:
			o.UpdateServer = c.plan.SettingURL
		}
		out = append(out, o)
	}
	if enabled && c.rt.Interfaces == nil && len(out) > 0 {
		c.skipped("that each [[dhcp.subnets]] interface exists with an address in its network, and that relayed ones are on no local interface (run check on the machine itself)")
	}
	return out
}

// subnetOptions translates what one subnet hands out ([dhcp]'s keys, or
// an entry's) into the DHCP server's options; set says which keys the file
// set (time_offset is sent only then).
func subnetOptions(s config.DHCPSubnetOptions, set func(key string) bool) dhcp.Options {
	o := dhcp.Options{
		Pool:           s.Pool,
		Router:         s.Router,
		DNS:            s.DNS,
		NTP:            s.NTP,
		Domain:         s.Domain,
		LeaseTime:      s.LeaseTime.Duration,
		UpdateServer:   s.UpdateServer,
		UpdateFilename: s.UpdateFilename,
		VendorOptions:  s.VendorOptions,
		VoiceVLAN:      s.VoiceVLAN,
		VoicePriority:  s.VoicePriority,
	}
	if set("time_offset") {
		off := s.TimeOffset.Duration
		o.TimeOffset = &off
	}
	for _, x := range s.Options {
		o.ExtraOptions = append(o.ExtraOptions, dhcp.ExtraOption(x))
	}
	for _, r := range s.Reservations {
		o.Reservations = append(o.Reservations, dhcp.Reservation{MAC: r.MAC, IP: r.IP, Hostname: r.Hostname})
	}
	return o
}

func inherit[T any](own bool, mine, theirs T) T {
	if own {
		return mine
	}
	return theirs
}

// mergeOptions is a subnet's options followed by those of [dhcp] with a
// code the subnet does not set (Kea's option-data inheritance): the
// subnet's own keep their indexes.
func mergeOptions(own, inherited []dhcp.ExtraOption) []dhcp.ExtraOption {
	out := slices.Clip(own)
	codes := map[int]bool{}
	for _, x := range own {
		codes[x.Code] = true
	}
	for _, x := range inherited {
		if !codes[x.Code] {
			out = append(out, x)
		}
	}
	return out
}

// localSubnetAddr is our address on a local subnet's interface: the one in
// its network. Missing interface or address is an error at the entry's
// interface key.
func (c *compiler) localSubnetAddr(at string, sn config.DHCPSubnet, ifs map[string][]netip.Prefix) netip.Addr {
	if ifs == nil {
		return netip.Addr{}
	}
	addrs, ok := ifs[sn.Interface]
	if !ok {
		parent, id, vlan := strings.Cut(sn.Interface, ".")
		if !vlan {
			parent, id = "eth0", "20"
		}
		c.errs.Add(at+".interface", "interface %q does not exist on this machine; use a name from `ip link`, or make the VLAN sub-interface (ip link add link %s name %s.%s type vlan id %s)", sn.Interface, parent, parent, id, id)
		return netip.Addr{}
	}
	for _, a := range addrs {
		if sn.Network.Contains(a.Addr()) {
			return a.Addr()
		}
	}
	if sn.Network.IsValid() {
		c.errs.Add(at+".interface", "interface %q has no address in %v (it has %v), so DHCP cannot serve that network there; give it one (ip addr add %v dev %s), or fix network",
			sn.Interface, sn.Network, addrs, exampleAddr(sn.Network), sn.Interface)
	}
	return netip.Addr{}
}

// notLocal: a relayed subnet must not be a network this machine sits on;
// its phones would broadcast here and find no subnet for the interface.
func (c *compiler) notLocal(at string, sn config.DHCPSubnet, ifs map[string][]netip.Prefix) {
	for name, addrs := range ifs {
		for _, a := range addrs {
			if sn.Network.IsValid() && sn.Network.Contains(a.Addr()) && name != "lo" {
				c.errs.Add(at+".network", "%v is on this machine's interface %s (%v), so it is not reached through a relay; serve it there with interface = %q",
					sn.Network, name, a, name)
				return
			}
		}
	}
}

// exampleAddr is the network's first host address with its prefix length.
func exampleAddr(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits())
}

// subnetErrors adds dhcp.Prepare's problems under "dhcp", as under does,
// and reports whether there were none. A subnet's problem with a value
// it inherited from [dhcp] is [dhcp]'s when [dhcp] has it too (reported
// there, once), else it is put on the subnet's entry, naming the key.
func (c *compiler) subnetErrors(err error) bool {
	if err == nil {
		return true
	}
	fes := field.List(err)
	if len(fes) == 0 {
		return c.under("dhcp", err)
	}
	primary := map[string]bool{}
	for _, fe := range fes {
		primary[fe.Key+"\x00"+fe.Msg] = true
	}
	for _, fe := range fes {
		key, msg := fe.Key, fe.Msg
		if i, sub, ok := subnetKey(key); ok && !c.ownSubnetKey(i, sub) {
			if primary[sub+"\x00"+msg] {
				continue
			}
			key, msg = fmt.Sprintf("subnets[%d]", i), topKey(sub)+", inherited from [dhcp]: "+msg
		}
		c.errs.Add(field.Prefix("dhcp", key), "%s", msg)
	}
	return false
}

// subnetKey splits "subnets[2].dns[0]" into 2 and "dns[0]".
func subnetKey(key string) (int, string, bool) {
	rest, ok := strings.CutPrefix(key, "subnets[")
	if !ok {
		return 0, "", false
	}
	n, rest, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(n)
	if !ok || err != nil {
		return 0, "", false
	}
	return i, strings.TrimPrefix(rest, "."), true
}

// topKey is the first key of a path: "options[3].code" -> "options".
func topKey(k string) string {
	if i := strings.IndexAny(k, ".["); i >= 0 {
		return k[:i]
	}
	return k
}

// ownSubnetKey reports whether sub (a key under dhcp.subnets[i]) holds the
// entry's own value rather than one inherited from [dhcp].
func (c *compiler) ownSubnetKey(i int, sub string) bool {
	top := topKey(sub)
	if ownSubnetKeys[top] {
		return true
	}
	if top == "options" && i < len(c.cfg.DHCP.Subnets) {
		j, _, _ := strings.Cut(strings.TrimPrefix(sub, "options["), "]")
		n, err := strconv.Atoi(j)
		return err == nil && n < len(c.cfg.DHCP.Subnets[i].Options)
	}
	return c.cfg.IsSet(fmt.Sprintf("dhcp.subnets[%d].%s", i, top))
}

// pnpSubnetInterfaces: PnP answers on every local subnet's interface too,
// so a phone on a VLAN gets the URL with our address on that VLAN. With
// pnp.interfaces set, the list is the file's; a local subnet missing from
// it is warned about (its phones would get DHCP but no PnP answer).
func (c *compiler) pnpSubnetInterfaces(ifaces []string) []string {
	if !c.cfg.DHCP.Enabled || !slices.ContainsFunc(ifaces, func(n string) bool { return n != "" }) {
		return ifaces // PnP on every interface
	}
	for i, sn := range c.cfg.DHCP.Subnets {
		if sn.Interface == "" || slices.Contains(ifaces, sn.Interface) {
			continue
		}
		if c.cfg.IsSet("pnp.interfaces") {
			c.warnings.Add("pnp.interfaces", "does not list %q, the interface of dhcp.subnets[%d], so phones there get no PnP answer (option 66 still reaches them)", sn.Interface, i)
			continue
		}
		ifaces = append(ifaces, sn.Interface)
	}
	return ifaces
}
