package routerconfig

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/internal/netif"
)

// KeaHA is what a Kea hot-standby pair needs beyond Params: the two Kea
// servers, the pool they share, and what else the phones' subnet gets.
// Subnet in Params is required.
type KeaHA struct {
	Primary, Standby netip.Addr // each Kea server's address on the phones' LAN
	Interface        string     // the interface Kea listens on; default eth0
	Port             int        // the HA peers' HTTP port; default 8000
	HooksDir         string     // where libdhcp_ha.so and libdhcp_lease_cmds.so are; default Debian's (amd64)
	LeaseFile        string     // default /var/lib/kea/kea-leases4.csv
	// HeartbeatDelay and MaxResponseDelay: how often the peers check each
	// other, and how long the standby waits before it takes over; default
	// 10 s and 60 s (Kea's own defaults).
	HeartbeatDelay, MaxResponseDelay time.Duration
	// LAN is [dhcp] on the phones' subnet as snomprov's compile prepares
	// it: the pool both servers share (none: the pair serves only Subnets),
	// router, DNS, NTP, domain, time offset, lease time, voice VLAN,
	// options and reservations. Its network and options 66/67 are Params'.
	LAN dhcp.Options
	// Subnets are the [[dhcp.subnets]] as snomprov's compile prepares them
	// (each with its own option 66 URL): each becomes one more subnet4
	// entry of both files. Local ones (Interface set) add their interface
	// to the interfaces Kea listens on; relayed ones are picked by giaddr.
	Subnets []dhcp.Options
}

// KeaHATarget is the router-config target of the Kea hot-standby pair.
const KeaHATarget = "kea-ha"

// DebianKeaHooks is where Debian's kea-dhcp4-server installs its hook
// libraries on amd64 (arm64: /usr/lib/aarch64-linux-gnu/kea/hooks).
const DebianKeaHooks = "/usr/lib/x86_64-linux-gnu/kea/hooks"

// KeaHAPair returns the kea-dhcp4.conf of the primary and of the standby:
// the same subnets, pools and phone options (each subnet's own class, as
// in Kea's snippet), and the HA hook in hot-standby mode. The standby
// answers nothing while the primary is alive, and everything once the
// primary has been silent for MaxResponseDelay.
func KeaHAPair(p Params, ha KeaHA) (primary, standby string, err error) {
	if err := p.validate(Kea); err != nil {
		return "", "", err
	}
	if !p.Subnet.IsValid() {
		return "", "", fmt.Errorf("kea-ha writes the subnet: give the phones' subnet, e.g. 192.168.1.0/24")
	}
	if err := ha.fill(p.Subnet); err != nil {
		return "", "", err
	}
	ks, err := ha.subnets(p)
	if err != nil {
		return "", "", err
	}
	for _, role := range []string{"primary", "standby"} {
		b, err := json.MarshalIndent(ha.config(ks, role), "", "  ")
		if err != nil {
			return "", "", err
		}
		addr := ha.Primary
		if role == "standby" {
			addr = ha.Standby
		}
		text := fmt.Sprintf("// snomprov: kea-dhcp4.conf of the %s (%s) of a Kea hot-standby pair.\n"+
			"// Phones get option 66 %s from either server; install the other file on the %s.\n%s%s\n",
			role, addr, p.SettingURL, map[string]string{"primary": "standby", "standby": "primary"}[role], ks.header(), b)
		if role == "primary" {
			primary = text
		} else {
			standby = text
		}
	}
	return primary, standby, nil
}

func (ha *KeaHA) fill(subnet netip.Prefix) error {
	subnet = subnet.Masked()
	if !ha.Primary.Is4() || !ha.Standby.Is4() || ha.Primary == ha.Standby {
		return fmt.Errorf("kea-ha needs two different IPv4 addresses, of the primary and the standby Kea server")
	}
	for _, a := range []netip.Addr{ha.Primary, ha.Standby} {
		if !subnet.Contains(a) {
			return fmt.Errorf("Kea server %s is not in the phones' subnet %s", a, subnet)
		}
	}
	first, last := ha.LAN.PoolStart, ha.LAN.PoolEnd
	switch {
	case !first.IsValid() && !last.IsValid() && len(ha.Subnets) > 0:
		// Subnets only: the LAN is its router's, as with serve.
	case !first.Is4() || !last.Is4() || last.Less(first):
		return fmt.Errorf("kea-ha needs a pool of IPv4 addresses, first to last: set [dhcp] pool or --pool")
	case !subnet.Contains(first) || !subnet.Contains(last):
		return fmt.Errorf("pool %s-%s is not inside the subnet %s", first, last, subnet)
	}
	if ha.Interface == "" {
		ha.Interface = "eth0"
	}
	if ha.Port == 0 {
		ha.Port = 8000
	}
	if ha.HooksDir == "" {
		ha.HooksDir = DebianKeaHooks
	}
	if ha.LeaseFile == "" {
		ha.LeaseFile = "/var/lib/kea/kea-leases4.csv"
	}
	if ha.HeartbeatDelay <= 0 {
		ha.HeartbeatDelay = 10 * time.Second
	}
	if ha.MaxResponseDelay <= 0 {
		ha.MaxResponseDelay = 60 * time.Second
	}
	if ha.MaxResponseDelay <= ha.HeartbeatDelay {
		return fmt.Errorf("max response delay %s must be longer than the heartbeat delay %s", ha.MaxResponseDelay, ha.HeartbeatDelay)
	}
	return nil
}

type obj = map[string]any

// keaSubnets is what the subnets make of both files: their subnet4
// entries, their phone classes, the interfaces Kea listens on, and the
// header lines telling the installer what each needs or lacks.
type keaSubnets struct {
	subnets, classes []obj
	nets             []netip.Prefix // of subnets, to refuse overlaps
	interfaces       []string
	notes            []string
}

func (ks *keaSubnets) header() string {
	var b strings.Builder
	for _, n := range ks.notes {
		fmt.Fprintf(&b, "// %s\n", n)
	}
	return b.String()
}

// subnets renders the phones' subnet (id 1, section "dhcp") and then each
// of Subnets (id i+2, "dhcp.subnets[i]"), all by one function.
func (ha KeaHA) subnets(p Params) (*keaSubnets, error) {
	lan := ha.LAN
	lan.Interface, lan.Subnet = ha.Interface, p.Subnet.Masked()
	lan.UpdateServer, lan.UpdateFilename = p.SettingURL, p.Filename
	ks := &keaSubnets{}
	if ha.LAN.Serve == dhcp.ServePhones {
		ks.notes = append(ks.notes, `dhcp.serve = "phones" is not carried over: the pair answers every client.`)
	}
	if lan.PoolStart.IsValid() {
		if err := ks.add(ha, 1, "dhcp", lan); err != nil {
			return nil, err
		}
	} else {
		// Without a LAN pool the pair serves only the subnets, like serve:
		// the LAN keeps its own server. Kea still listens there, for the
		// relays and for the HA peer.
		ks.interfaces = append(ks.interfaces, lan.Interface)
		ks.notes = append(ks.notes, fmt.Sprintf("The LAN %s is not served ([dhcp] has no pool): the pair serves only the subnets below.", lan.Subnet))
	}
	for i, o := range ha.Subnets {
		if err := ks.add(ha, i+2, fmt.Sprintf("dhcp.subnets[%d]", i), o); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// add renders one subnet: its subnet4 entry, and the class that gives its
// phones options 66/67 (and the voice VLAN). The class is only-if-required
// and required by this subnet alone: Kea evaluates it after picking the
// subnet, so each subnet's phones get that subnet's URL.
func (ks *keaSubnets) add(ha KeaHA, id int, name string, o dhcp.Options) error {
	network := o.Subnet.Masked()
	if !network.IsValid() || !network.Addr().Is4() {
		return fmt.Errorf("%s.network: kea-ha needs the subnet's IPv4 network", name)
	}
	for _, other := range ks.nets {
		if other.Overlaps(network) {
			return fmt.Errorf("%s.network: %s overlaps %s, another subnet of the pair", name, network, other)
		}
	}
	if !o.PoolStart.Is4() || !o.PoolEnd.Is4() {
		return fmt.Errorf("%s.pool: kea-ha needs the subnet's pool", name)
	}
	phone, err := phoneOptionData(name, o)
	if err != nil {
		return err
	}
	class := fmt.Sprintf("snom-%d", id)
	ks.classes = append(ks.classes, obj{"name": class, "test": snomTest(), "only-if-required": true, "option-data": phone})
	sub := obj{"id": id, "subnet": network.String(), "require-client-classes": []string{class},
		"pools": []obj{{"pool": o.PoolStart.String() + " - " + o.PoolEnd.String()}}}
	opts, err := subnetOptionData(name, o)
	if err != nil {
		return err
	}
	if len(opts) > 0 {
		sub["option-data"] = opts
	}
	if o.LeaseTime > 0 {
		sub["valid-lifetime"] = int(o.LeaseTime.Seconds())
	}
	if len(o.Reservations) > 0 {
		if sub["reservations"], err = reservations(name, network, o.Reservations); err != nil {
			return err
		}
	}
	where := "relayed: its relays must forward to both " + ha.Primary.String() + " and " + ha.Standby.String()
	if o.Interface != "" {
		// Kea picks a local subnet by the interface a request arrives on.
		sub["interface"] = o.Interface
		if !slices.Contains(ks.interfaces, o.Interface) {
			ks.interfaces = append(ks.interfaces, o.Interface)
		}
		where = "local on " + o.Interface + ": both Kea servers need " + o.Interface + " with an address in it"
	}
	ks.subnets, ks.nets = append(ks.subnets, sub), append(ks.nets, network)
	if id > 1 {
		ks.notes = append(ks.notes, fmt.Sprintf("Subnet %s (%s, %s): option 66 %s.", network, name, where, o.UpdateServer))
	}
	if o.VendorOptions {
		ks.notes = append(ks.notes, name+".vendor_options is not carried over: Kea sends option 43 only with an option-def of Snom's sub-options; phones still get 66/67.")
	}
	return nil
}

// phoneOptionData is what a subnet's Snom class sends, even unrequested:
// options 66 and 67, and the voice VLAN (132/133, ASCII as snomprov sends
// them).
func phoneOptionData(name string, o dhcp.Options) ([]obj, error) {
	if o.UpdateServer == "" {
		return nil, fmt.Errorf("%s.update_server: no option 66 URL for the subnet", name)
	}
	if err := checkValue(name+".update_server", o.UpdateServer, KeaHATarget); err != nil {
		return nil, err
	}
	if o.UpdateFilename != "" {
		if err := checkValue(name+".update_filename", o.UpdateFilename, KeaHATarget); err != nil {
			return nil, err
		}
	}
	opts := phoneOptions(Params{SettingURL: o.UpdateServer, Filename: o.UpdateFilename})
	if o.VoiceVLAN > 0 {
		opts = append(opts, hexOption(132, []byte(strconv.Itoa(o.VoiceVLAN)), true),
			hexOption(133, []byte(strconv.Itoa(o.VoicePriority)), true))
	}
	return opts, nil
}

// subnetOptionData is the subnet's option-data for every client: router,
// DNS, domain, NTP, time offset and the extra options.
func subnetOptionData(name string, o dhcp.Options) ([]obj, error) {
	var opts []obj
	if o.Router.IsValid() {
		opts = append(opts, obj{"name": "routers", "data": o.Router.String()})
	}
	if len(o.DNS) > 0 {
		opts = append(opts, obj{"name": "domain-name-servers", "data": netif.JoinAddrs(o.DNS)})
	}
	if o.Domain != "" {
		if err := checkValue(name+".domain", o.Domain, KeaHATarget); err != nil {
			return nil, err
		}
		opts = append(opts, obj{"name": "domain-name", "data": o.Domain})
	}
	if len(o.NTP) > 0 {
		opts = append(opts, obj{"name": "ntp-servers", "data": netif.JoinAddrs(o.NTP)})
	}
	if o.TimeOffset != nil {
		opts = append(opts, obj{"name": "time-offset", "data": strconv.Itoa(int(o.TimeOffset.Seconds()))})
	}
	for i, x := range o.ExtraOptions {
		// Hex, as snomprov encodes it: Kea's own type for the code may
		// differ from the one in the config.
		v, err := x.Wire()
		if err != nil {
			return nil, fmt.Errorf("%s.options[%d]: %w", name, i, err)
		}
		opts = append(opts, hexOption(x.Code, v, x.Always))
	}
	return opts, nil
}

func hexOption(code int, v []byte, always bool) obj {
	o := obj{"code": code, "csv-format": false, "data": strings.ToUpper(hex.EncodeToString(v))}
	if always {
		o["always-send"] = true
	}
	return o
}

func reservations(name string, network netip.Prefix, list []dhcp.Reservation) ([]obj, error) {
	out := make([]obj, len(list))
	for i, r := range list {
		// --subnet may have moved the LAN's subnet away from [dhcp]'s.
		if !network.Contains(r.IP) {
			return nil, fmt.Errorf("%s.reservations[%d].ip: %s is outside the subnet %s", name, i, r.IP, network)
		}
		out[i] = obj{"hw-address": r.MAC.Colon(), "ip-address": r.IP.String()}
		if r.Hostname != "" {
			out[i]["hostname"] = r.Hostname
		}
	}
	return out, nil
}

func (ha KeaHA) config(ks *keaSubnets, role string) obj {
	peer := func(name string, a netip.Addr) obj {
		return obj{"name": name, "url": fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, uint16(ha.Port))), "role": name, "auto-failover": true}
	}
	hooks := ha.HooksDir + "/"
	d4 := obj{
		"interfaces-config": obj{"interfaces": ks.interfaces},
		"lease-database":    obj{"type": "memfile", "persist": true, "name": ha.LeaseFile},
		"valid-lifetime":    43200,
		// T1 and T2 at 1/2 and 7/8 of the lease, as snomprov sends them.
		"calculate-tee-times": true,
		// HA with its own HTTP listener (no kea-ctrl-agent) needs Kea's
		// multi-threading.
		"multi-threading": obj{"enable-multi-threading": true, "thread-pool-size": 4, "packet-queue-size": 64},
		"hooks-libraries": []obj{
			{"library": hooks + "libdhcp_lease_cmds.so"},
			{"library": hooks + "libdhcp_ha.so", "parameters": obj{"high-availability": []obj{{
				"this-server-name":   role,
				"mode":               "hot-standby",
				"heartbeat-delay":    ha.HeartbeatDelay.Milliseconds(),
				"max-response-delay": ha.MaxResponseDelay.Milliseconds(),
				"max-ack-delay":      5000,
				// 0: the standby takes over on the primary's silence alone,
				// without first watching clients go unanswered.
				"max-unacked-clients": 0,
				"multi-threading": obj{"enable-multi-threading": true, "http-dedicated-listener": true,
					"http-listener-threads": 2, "http-client-threads": 2},
				"peers": []obj{peer("primary", ha.Primary), peer("standby", ha.Standby)},
			}}}},
		},
		"client-classes": ks.classes,
		"subnet4":        ks.subnets,
		"loggers": []obj{{"name": "kea-dhcp4", "severity": "INFO",
			"output_options": []obj{{"output": "stdout"}}}},
	}
	if ha.LAN.Authoritative {
		d4["authoritative"] = true // as [dhcp] authoritative: NAK what it does not know
	}
	return obj{"Dhcp4": d4}
}

// snomTest is Kea's class test for a Snom phone: vendor class (option 60)
// starting with "snom", or a Snom MAC prefix.
func snomTest() string {
	test := []string{"substring(option[60].hex,0,4) == 'snom'"}
	for _, o := range snomOUIs {
		test = append(test, fmt.Sprintf("substring(pkt4.mac,0,3) == 0x%s", ouiHex(o)))
	}
	return strings.Join(test, " or ")
}

// phoneOptions are options 66 and 67, sent even when not requested.
func phoneOptions(p Params) []obj {
	opts := []obj{{"name": "tftp-server-name", "code": 66, "data": p.SettingURL, "always-send": true}}
	if p.Filename != "" {
		opts = append(opts, obj{"name": "boot-file-name", "code": 67, "data": p.Filename, "always-send": true})
	}
	return opts
}
