package routerconfig

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// KeaHA is what a Kea hot-standby pair needs beyond Params: the two Kea
// servers, the pool they share, and what else the phones' subnet gets.
// Subnet in Params is required.
type KeaHA struct {
	Primary, Standby netip.Addr // each Kea server's address on the phones' LAN
	Interface        string     // the interface Kea listens on; default eth0
	PoolFirst        netip.Addr // the pool both share, inside Params.Subnet
	PoolLast         netip.Addr
	Router           netip.Addr // option 3; optional
	DNS              []netip.Addr
	Port             int    // the HA peers' HTTP port; default 8000
	HooksDir         string // where libdhcp_ha.so and libdhcp_lease_cmds.so are; default Debian's (amd64)
	LeaseFile        string // default /var/lib/kea/kea-leases4.csv
	// HeartbeatDelay and MaxResponseDelay: how often the peers check each
	// other, and how long the standby waits before it takes over; default
	// 10 s and 60 s (Kea's own defaults).
	HeartbeatDelay, MaxResponseDelay time.Duration
}

// KeaHATarget is the router-config target of the Kea hot-standby pair.
const KeaHATarget = "kea-ha"

// DebianKeaHooks is where Debian's kea-dhcp4-server installs its hook
// libraries on amd64 (arm64: /usr/lib/aarch64-linux-gnu/kea/hooks).
const DebianKeaHooks = "/usr/lib/x86_64-linux-gnu/kea/hooks"

// KeaHAPair returns the kea-dhcp4.conf of the primary and of the standby:
// the same subnet, pool and phone options (the class of Kea's snippet),
// and the HA hook in hot-standby mode. The standby answers nothing while
// the primary is alive, and everything once the primary has been silent
// for MaxResponseDelay.
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
	for _, role := range []string{"primary", "standby"} {
		b, err := json.MarshalIndent(ha.config(p, role), "", "  ")
		if err != nil {
			return "", "", err
		}
		addr := ha.Primary
		if role == "standby" {
			addr = ha.Standby
		}
		text := fmt.Sprintf("// snomprov: kea-dhcp4.conf of the %s (%s) of a Kea hot-standby pair.\n"+
			"// Phones get option 66 %s from either server; install the other file on the %s.\n%s\n",
			role, addr, p.SettingURL, map[string]string{"primary": "standby", "standby": "primary"}[role], b)
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
	first, last := ha.PoolFirst, ha.PoolLast
	if !first.Is4() || !last.Is4() || last.Less(first) {
		return fmt.Errorf("kea-ha needs a pool of IPv4 addresses, first to last: set [dhcp] pool or --pool")
	}
	if !subnet.Contains(first) || !subnet.Contains(last) {
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

func (ha KeaHA) config(p Params, role string) obj {
	class := obj{"name": "snom", "test": snomTest(), "option-data": phoneOptions(p)}
	subnet := obj{"id": 1, "subnet": p.Subnet.Masked().String(), "pools": []obj{{"pool": ha.PoolFirst.String() + " - " + ha.PoolLast.String()}}}
	var opts []obj
	if ha.Router.IsValid() {
		opts = append(opts, obj{"name": "routers", "data": ha.Router.String()})
	}
	if len(ha.DNS) > 0 {
		dns := make([]string, len(ha.DNS))
		for i, a := range ha.DNS {
			dns[i] = a.String()
		}
		opts = append(opts, obj{"name": "domain-name-servers", "data": strings.Join(dns, ", ")})
	}
	if len(opts) > 0 {
		subnet["option-data"] = opts
	}
	peer := func(name string, a netip.Addr) obj {
		return obj{"name": name, "url": fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, uint16(ha.Port))), "role": name, "auto-failover": true}
	}
	hooks := ha.HooksDir + "/"
	return obj{"Dhcp4": obj{
		"interfaces-config": obj{"interfaces": []string{ha.Interface}},
		"lease-database":    obj{"type": "memfile", "persist": true, "name": ha.LeaseFile},
		"valid-lifetime":    43200,
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
		"client-classes": []obj{class},
		"subnet4":        []obj{subnet},
		"loggers": []obj{{"name": "kea-dhcp4", "severity": "INFO",
			"output_options": []obj{{"output": "stdout"}}}},
	}}
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
