package plan

import (
	"net/netip"
	"strings"
	"testing"
)

// machine is a Runtime whose interfaces are a trunk port eth0 with the VLAN
// sub-interfaces eth0.20 (an address in 10.20.0.0/24) and eth0.30 (none),
// and an uplink eth1 on 192.168.50.0/24.
func machine() Runtime {
	ifs := map[string][]netip.Prefix{
		"lo":      {netip.MustParsePrefix("127.0.0.1/8")},
		"eth0":    {netip.MustParsePrefix("10.0.0.2/24")},
		"eth0.20": {netip.MustParsePrefix("10.20.0.1/24")},
		"eth0.30": nil,
		"eth1":    {netip.MustParsePrefix("192.168.50.2/24")},
	}
	return Runtime{
		InterfaceExists: func(n string) bool { _, ok := ifs[n]; return ok },
		Interfaces:      func() (map[string][]netip.Prefix, error) { return ifs, nil },
	}
}

var trunkLAN = LAN{Interface: "eth0", Prefix: netip.MustParsePrefix("10.0.0.2/24")}

const subnetsBase = "[http]\nlisten = \":8080\"\n" + dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\ndns = [\"10.0.0.53\"]\nvoice_vlan = 10\n" +
	"[[dhcp.options]]\ncode = 150\ntype = \"ipv4\"\nvalue = \"10.0.0.9\"\n"

const vlan20 = "[[dhcp.subnets]]\nnetwork = \"10.20.0.0/24\"\ninterface = \"eth0.20\"\npool = \"10.20.0.100-10.20.0.199\"\nrouter = \"10.20.0.254\"\n"

const relayed30 = "[[dhcp.subnets]]\nnetwork = \"10.40.0.0/24\"\npool = \"10.40.0.100-10.40.0.199\"\nvoice_vlan = 0\n"

// TestSubnetsCompile: what each subnet gets, inherited or its own, and the
// address and URL it is served with.
func TestSubnetsCompile(t *testing.T) {
	p, err := Compile(mustParse(t, subnetsBase+vlan20+relayed30+
		"[[dhcp.subnets.options]]\ncode = 150\ntype = \"ipv4\"\nvalue = \"10.40.0.9\"\n"), trunkLAN, machine())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	subs := p.DHCP.Options().Subnets
	if len(subs) != 2 {
		t.Fatalf("%d subnets", len(subs))
	}
	v, r := subs[0], subs[1]
	if v.Interface != "eth0.20" || v.ServerIP != netip.MustParseAddr("10.20.0.1") || v.UpdateServer != "http://10.20.0.1:8080/" {
		t.Errorf("VLAN subnet: interface %q, server %v, option 66 %q", v.Interface, v.ServerIP, v.UpdateServer)
	}
	if v.VoiceVLAN != 10 || len(v.DNS) != 1 || v.DNS[0] != netip.MustParseAddr("10.0.0.53") || len(v.ExtraOptions) != 1 || v.ExtraOptions[0].Value != "10.0.0.9" {
		t.Errorf("VLAN subnet did not inherit [dhcp]'s: vlan %d dns %v options %+v", v.VoiceVLAN, v.DNS, v.ExtraOptions)
	}
	if r.Interface != "" || r.ServerIP != netip.MustParseAddr("10.0.0.2") || r.UpdateServer != "http://10.0.0.2:8080/" {
		t.Errorf("relayed subnet: interface %q, server %v, option 66 %q", r.Interface, r.ServerIP, r.UpdateServer)
	}
	if r.VoiceVLAN != 0 || len(r.ExtraOptions) != 1 || r.ExtraOptions[0].Value != "10.40.0.9" {
		t.Errorf("relayed subnet's own values lost: vlan %d options %+v", r.VoiceVLAN, r.ExtraOptions)
	}
	if got := p.PnP.Options().Interfaces; strings.Join(got, ",") != "eth0,eth0.20" {
		t.Errorf("PnP interfaces = %v, want the LAN's and the VLAN's", got)
	}
}

// TestSubnetsCheck: the check rules of [[dhcp.subnets]], located at the
// entry's keys.
func TestSubnetsCheck(t *testing.T) {
	tests := []struct {
		name string
		text string
		rt   Runtime
		want []string
	}{
		{"fits", vlan20 + relayed30, machine(), nil},
		{"interface missing", strings.Replace(vlan20, "eth0.20", "eth0.99", 1), machine(), []string{
			`test.toml:14:1: dhcp.subnets[0].interface: interface "eth0.99" does not exist on this machine; use a name from ` + "`ip link`" + `, or make the VLAN sub-interface (ip link add link eth0 name eth0.99 type vlan id 99)`}},
		{"interface without an address in network", strings.Replace(vlan20, "eth0.20", "eth0.30", 1), machine(), []string{
			`test.toml:14:1: dhcp.subnets[0].interface: interface "eth0.30" has no address in 10.20.0.0/24 (it has []), so DHCP cannot serve that network there; give it one (ip addr add 10.20.0.1/24 dev eth0.30)`}},
		{"relayed on a local interface", strings.ReplaceAll(relayed30, "10.40.0.", "192.168.50."), machine(), []string{
			`test.toml:13:1: dhcp.subnets[0].network: 192.168.50.0/24 is on this machine's interface eth1 (192.168.50.2/24), so it is not reached through a relay; serve it there with interface = "eth1"`}},
		{"pool outside network", strings.Replace(vlan20, "10.20.0.100-10.20.0.199", "10.21.0.100-10.21.0.199", 1), machine(), []string{
			"test.toml:15:1: dhcp.subnets[0].pool: the pool 10.21.0.100-10.21.0.199 is outside its network 10.20.0.0/24"}},
		{"overlapping networks", vlan20 + strings.Replace(relayed30, "10.40.0.0/24", "10.20.0.0/16", 1), machine(), []string{
			"test.toml:18:1: dhcp.subnets[1].network: 10.20.0.0/16 is on this machine's interface eth0.20",
			"test.toml:18:1: dhcp.subnets[1].network: 10.20.0.0/16 overlaps 10.20.0.0/24 of subnets[0]",
			"test.toml:19:1: dhcp.subnets[1].pool: the pool 10.40.0.100-10.40.0.199 is outside its network 10.20.0.0/16"}},
		{"on the LAN interface", strings.Replace(strings.Replace(vlan20, "eth0.20", "eth0", 1), "10.20.0.", "10.0.0.", 4), machine(), []string{
			"test.toml:13:1: dhcp.subnets[0].network: 10.0.0.0/24 overlaps 10.0.0.0/24 of the primary subnet",
			`test.toml:14:1: dhcp.subnets[0].interface: interface "eth0" already serves the primary subnet`}},
		{"an inherited value that is wrong only there", "[http]\nlisten = \":8080\"\n" + dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\n" +
			"[[dhcp.options]]\ncode = 132\ntype = \"string\"\nvalue = \"7\"\n" + strings.Replace(relayed30, "voice_vlan = 0", "voice_vlan = 30", 1), machine(), []string{
			"test.toml:10:1: dhcp.subnets[0]: options, inherited from [dhcp]: option 132 has its own key while voice_vlan is set"}},
		{"option 66 on the VLAN address, 67 not served", vlan20 + "update_server = \"http://10.20.0.1:8080/\"\nupdate_filename = \"nothing.bin\"\n", machine(), []string{
			"test.toml:18:1: dhcp.subnets[0].update_filename: phones join option 66 and 67 into http://10.20.0.1:8080/nothing.bin, which this appliance does not serve"}},
		{"no pool in [dhcp]: subnets only", "[http]\nlisten = \":8080\"\n" + dhcpOn + vlan20 + relayed30, machine(), nil},
		{"no pool in [dhcp], but a reservation", "[http]\nlisten = \":8080\"\n" + dhcpOn + "[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.50\"\n" + vlan20, machine(), []string{
			"test.toml:5:1: dhcp.reservations[0]: [dhcp] has no pool, so the LAN subnet is not served and its reservations would never be handed out"}},
		{"no pool and no subnets", "[http]\nlisten = \":8080\"\n" + dhcpOn, machine(), []string{
			"test.toml:3:1: dhcp.pool: DHCP needs a pool to serve from"}},
		{"away from the machine: interfaces not checked", strings.Replace(vlan20, "eth0.20", "eth0.99", 1), Runtime{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if !strings.HasPrefix(text, "[http]") {
				text = subnetsBase + text
			}
			p, err := Compile(mustParse(t, text), trunkLAN, tt.rt)
			wantProblems(t, p, err, tt.want)
		})
	}
}
