package routerconfig

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/phone"
)

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// lanPool is [dhcp] on lanSubnet with only its pool set.
func lanPool() dhcp.Options {
	return dhcp.Options{PoolStart: mustAddr("10.77.0.100"), PoolEnd: mustAddr("10.77.0.150")}
}

func TestKeaHAPairRejects(t *testing.T) {
	p := Params{SettingURL: testURL, Subnet: mustPrefix(lanSubnet)}
	good := KeaHA{Primary: mustAddr("10.77.0.2"), Standby: mustAddr("10.77.0.3"), LAN: lanPool()}
	for _, tc := range []struct {
		name string
		edit func(*KeaHA)
		want string
	}{
		{"same server twice", func(h *KeaHA) { h.Standby = h.Primary }, "two different IPv4 addresses"},
		{"server off the subnet", func(h *KeaHA) { h.Standby = mustAddr("10.78.0.3") }, "not in the phones' subnet"},
		{"pool off the subnet", func(h *KeaHA) { h.LAN.PoolEnd = mustAddr("10.77.1.5") }, "not inside the subnet"},
		{"no pool", func(h *KeaHA) { h.LAN.PoolStart = netip.Addr{} }, "needs a pool"},
		{"takeover before heartbeat", func(h *KeaHA) { h.HeartbeatDelay, h.MaxResponseDelay = 5*time.Second, time.Second }, "must be longer"},
	} {
		ha := good
		tc.edit(&ha)
		if _, _, err := KeaHAPair(p, ha); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, _, err := KeaHAPair(Params{SettingURL: testURL}, good); err == nil {
		t.Error("no subnet accepted")
	}
	pri, sb, err := KeaHAPair(p, good)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"this-server-name": "primary"`, `"mode": "hot-standby"`, DebianKeaHooks + "/libdhcp_ha.so", DebianKeaHooks + "/libdhcp_lease_cmds.so", `"url": "http://10.77.0.3:8000/"`, `"data": "` + testURL + `"`} {
		if !strings.Contains(pri, want) {
			t.Errorf("primary config lacks %s", want)
		}
	}
	if !strings.Contains(sb, `"this-server-name": "standby"`) {
		t.Error("standby config does not name itself")
	}
}

// keaHooksDir finds where this machine's Kea keeps its hook libraries
// (Debian: /usr/lib/<multiarch>/kea/hooks).
func keaHooksDir(t *testing.T) string {
	t.Helper()
	libs, _ := filepath.Glob("/usr/lib/*/kea/hooks/libdhcp_ha.so")
	if len(libs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("Kea's HA hook (libdhcp_ha.so) is not installed; .ci/install-deps.sh must install kea-dhcp4-server")
		}
		t.Skip("Kea's HA hook (libdhcp_ha.so) not installed; skipping")
	}
	return filepath.Dir(libs[0])
}

// Two kea-dhcp4 from the generated pair on a simulated LAN: the primary
// serves the phones, and a relayed subnet; killed, the standby takes over
// and hands out the phone options, and serves the relayed subnet too.
func TestKeaHAFailover(t *testing.T) {
	t.Parallel()
	kea := needTool(t, "kea-dhcp4")
	needTool(t, "dhclient")
	perfdhcp := needTool(t, "perfdhcp")
	hooks := keaHooksDir(t)
	l := lantest.New(t, lanSubnet)
	srvs := []*lantest.Host{
		l.AddHost("kea1", lantest.HostOptions{Addr: "10.77.0.2/24"}),
		l.AddHost("kea2", lantest.HostOptions{Addr: "10.77.0.3/24"}),
	}
	dir := t.TempDir()
	ha := KeaHA{Primary: mustAddr("10.77.0.2"), Standby: mustAddr("10.77.0.3"),
		LAN: lanPool(), HooksDir: hooks,
		HeartbeatDelay: time.Second, MaxResponseDelay: 3 * time.Second, Subnets: []dhcp.Options{relayedSubnet()}}
	// perfdhcp acts as the relay: its requests carry giaddr, its address
	// in the relayed subnet (a second address on the LAN, so Kea's reply
	// reaches it without a router).
	relay := l.AddHost("relay", lantest.HostOptions{Addr: "10.77.0.9/24"})
	if out, err := relay.Run(context.Background(), "ip", "addr", "add", "10.30.0.1/24", "dev", "eth0"); err != nil {
		t.Fatalf("relay address: %v\n%s", err, out)
	}
	var procs []*lantest.Process
	for i, role := range []string{"primary", "standby"} {
		sdir := filepath.Join(dir, role)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			t.Fatal(err)
		}
		ha.LeaseFile = filepath.Join(sdir, "leases4.csv")
		pri, sb, err := KeaHAPair(Params{SettingURL: testURL, Filename: testFile, Subnet: mustPrefix(lanSubnet)}, ha)
		if err != nil {
			t.Fatal(err)
		}
		conf := map[string]string{"primary": pri, "standby": sb}[role]
		confPath := filepath.Join(sdir, "kea-dhcp4.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := srvs[i].Run(ctx, kea, "-t", confPath) // where its interface is
		cancel()
		if err != nil {
			t.Fatalf("kea-dhcp4 -t rejects the %s config: %v\n%s\n%s", role, err, out, conf)
		}
		procs = append(procs, srvs[i].Start("env", "KEA_PIDFILE_DIR="+sdir, "KEA_LOCKFILE_DIR="+sdir, kea, "-c", confPath))
	}
	for i, p := range procs {
		if err := p.WaitOutput("to HOT-STANDBY state", 60*time.Second); err != nil {
			t.Fatalf("Kea %d did not reach hot-standby: %v\n%s", i+1, err, p.Output())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "dhclient.sh"), []byte(dhclientScript), 0o755); err != nil {
		t.Fatal(err)
	}
	phone1 := l.AddHost("d785", lantest.HostOptions{})
	got := getLease(t, phone1, clients[0], dir)
	if got.server != "10.77.0.2" || got.opt66 != testURL || got.opt67 != testFile {
		t.Fatalf("with both up: %+v, want a lease from the primary 10.77.0.2 with options 66/67", got)
	}
	relayLease(t, relay, perfdhcp, "10.77.0.2", procs[0])

	procs[0].Signal(unix.SIGKILL)
	<-procs[0].Done()
	if err := procs[1].WaitOutput("to PARTNER-DOWN state", 60*time.Second); err != nil {
		t.Fatalf("the standby did not take over: %v\n%s", err, procs[1].Output())
	}
	phone2 := l.AddHost("oldsnom", lantest.HostOptions{MAC: clients[1].mac})
	got = getLease(t, phone2, clients[1], dir)
	if got.server != "10.77.0.3" || got.opt66 != testURL || got.opt67 != testFile || !strings.HasPrefix(got.ip, "10.77.0.") {
		t.Fatalf("primary killed: %+v, want a lease from the standby 10.77.0.3 with options 66/67", got)
	}
	relayLease(t, relay, perfdhcp, "10.77.0.3", procs[1])
}

// relayLease has perfdhcp, as a relay in 10.30.0.0/24, lease an address
// from the Kea server kea at addr: kea picks the relayed subnet by giaddr
// and allocates one of its addresses. perfdhcp's own count is read for
// the offer only: it exits (status 3, "drops") without waiting for an ACK
// that comes after the HA lease update.
func relayLease(t *testing.T, relay *lantest.Host, perfdhcp, addr string, kea *lantest.Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := relay.Run(ctx, perfdhcp, "-4", "-l", "10.30.0.1", "-R", "1", "-r", "1", "-n", "1", "-d", "5", "-W", "2000000", addr)
	_, offers, _ := strings.Cut(out, "Statistics for: DISCOVER-OFFER")
	var exit *exec.ExitError
	if (err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3)) || !strings.Contains(offers, "received packets: 1") {
		t.Fatalf("perfdhcp relayed from 10.30.0.1 to %s: %v, want an offer\n%s", addr, err, out)
	}
	// Its own allocation, not a lease update from its partner.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if slices.ContainsFunc(strings.Split(kea.Output(), "\n"), func(l string) bool {
			return strings.Contains(l, "DHCP4_LEASE_ALLOC") && strings.Contains(l, "lease 10.30.0.")
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kea at %s allocated no address of the relayed subnet 10.30.0.0/24", addr)
		}
	}
}

// haPair is a valid pair on lanSubnet with the given subnets.
func haPair(subnets ...dhcp.Options) (Params, KeaHA) {
	return Params{SettingURL: testURL, Filename: testFile, Subnet: mustPrefix(lanSubnet)},
		KeaHA{Primary: mustAddr("10.77.0.2"), Standby: mustAddr("10.77.0.3"),
			LAN: lanPool(), Subnets: subnets}
}

// localSubnet is a VLAN subnet as plan compiles it: our address on
// eth0.20 is in its URL.
func localSubnet() dhcp.Options {
	return dhcp.Options{Interface: "eth0.20", ServerIP: mustAddr("10.20.0.2"), Subnet: mustPrefix("10.20.0.0/24"),
		PoolStart: mustAddr("10.20.0.100"), PoolEnd: mustAddr("10.20.0.199"), Router: mustAddr("10.20.0.1"),
		DNS: []netip.Addr{mustAddr("10.20.0.1")}, UpdateServer: "http://10.20.0.2/"}
}

// relayedSubnet is a subnet behind a relay: its URL is the LAN's.
func relayedSubnet() dhcp.Options {
	return dhcp.Options{Subnet: mustPrefix("10.30.0.0/24"), PoolStart: mustAddr("10.30.0.100"), PoolEnd: mustAddr("10.30.0.199"),
		Router: mustAddr("10.30.0.1"), UpdateServer: testURL, UpdateFilename: testFile}
}

// keaFile splits one file of the pair into its header comments and its
// decoded JSON.
func keaFile(t *testing.T, text string) (string, map[string]any) {
	t.Helper()
	i := strings.Index(text, "\n{")
	var v struct{ Dhcp4 map[string]any }
	if i < 0 || json.Unmarshal([]byte(text[i:]), &v) != nil || v.Dhcp4 == nil {
		t.Fatalf("not a header and a Dhcp4 object:\n%s", text)
	}
	return text[:i], v.Dhcp4
}

// jsonAt follows a path of keys and indexes into decoded JSON; nil when
// something on the way is missing.
func jsonAt(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// optionData finds the entry of an option-data list by code or name.
func optionData(list any, codeOrName any) map[string]any {
	l, _ := list.([]any)
	for _, o := range l {
		m, _ := o.(map[string]any)
		if c, ok := codeOrName.(int); ok && m["code"] == float64(c) || m["name"] == codeOrName {
			return m
		}
	}
	return nil
}

func TestKeaHAPairSubnets(t *testing.T) {
	offset := -time.Hour
	for _, tc := range []struct {
		name    string
		edit    func(*KeaHA)
		subnets []dhcp.Options
		want    map[string]any // a path ("a.0.b") in Dhcp4, and its value
		header  []string       // lines the header must say
	}{
		{"local", nil, []dhcp.Options{localSubnet()}, map[string]any{
			"authoritative":                     nil,
			"interfaces-config.interfaces":      []any{"eth0", "eth0.20"},
			"subnet4.0.interface":               "eth0",
			"subnet4.1.id":                      2.0,
			"subnet4.1.subnet":                  "10.20.0.0/24",
			"subnet4.1.interface":               "eth0.20",
			"subnet4.1.pools.0.pool":            "10.20.0.100 - 10.20.0.199",
			"subnet4.1.require-client-classes":  []any{"snom-2"},
			"client-classes.1.name":             "snom-2",
			"client-classes.1.only-if-required": true,
		}, []string{"Subnet 10.20.0.0/24 (dhcp.subnets[0], local on eth0.20: both Kea servers need eth0.20 with an address in it): option 66 http://10.20.0.2/."}},
		{"relayed", nil, []dhcp.Options{relayedSubnet()}, map[string]any{
			"interfaces-config.interfaces": []any{"eth0"},
			"subnet4.1.interface":          nil,
			"subnet4.1.subnet":             "10.30.0.0/24",
		}, []string{"(dhcp.subnets[0], relayed: its relays must forward to both 10.77.0.2 and 10.77.0.3)"}},
		{"everything a subnet hands out", nil, []dhcp.Options{func() dhcp.Options {
			o := relayedSubnet()
			o.Domain, o.NTP, o.TimeOffset, o.LeaseTime = "branch.lan", []netip.Addr{mustAddr("10.30.0.1"), mustAddr("10.30.0.2")}, &offset, time.Hour
			o.VoiceVLAN, o.VoicePriority = 20, 5
			o.ExtraOptions = []dhcp.ExtraOption{{Code: 150, Type: "ipv4", Value: "10.30.0.5", Always: true}, {Code: 160, Type: "string", Value: "x"}}
			o.Reservations = []dhcp.Reservation{{MAC: phone.MAC{0, 4, 0x13, 0, 0, 1}, IP: mustAddr("10.30.0.50"), Hostname: "lobby"}}
			return o
		}()}, map[string]any{
			"subnet4.1.valid-lifetime":                           3600.0,
			"subnet4.1.reservations.0.hw-address":                "00:04:13:00:00:01",
			"subnet4.1.reservations.0.ip-address":                "10.30.0.50",
			"subnet4.1.reservations.0.hostname":                  "lobby",
			"subnet4.1.option-data#routers.data":                 "10.30.0.1",
			"subnet4.1.option-data#domain-name.data":             "branch.lan",
			"subnet4.1.option-data#ntp-servers.data":             "10.30.0.1, 10.30.0.2",
			"subnet4.1.option-data#time-offset.data":             "-3600",
			"subnet4.1.option-data#150.data":                     "0A1E0005",
			"subnet4.1.option-data#150.always-send":              true,
			"subnet4.1.option-data#160.always-send":              nil,
			"client-classes.1.option-data#tftp-server-name.data": testURL,
			"client-classes.1.option-data#boot-file-name.data":   testFile,
			"client-classes.1.option-data#132.data":              "3230", // "20"
			"client-classes.1.option-data#133.data":              "35",
		}, nil},
		{"subnets only: no LAN pool", func(h *KeaHA) { h.LAN.PoolStart, h.LAN.PoolEnd = netip.Addr{}, netip.Addr{} }, []dhcp.Options{relayedSubnet()}, map[string]any{
			"interfaces-config.interfaces": []any{"eth0"},
			"subnet4.0.id":                 2.0,
			"subnet4.0.subnet":             "10.30.0.0/24",
			"subnet4.1":                    nil,
			"client-classes.0.name":        "snom-2",
		}, []string{"The LAN 10.77.0.0/24 is not served ([dhcp] has no pool): the pair serves only the subnets below."}},
		{"the LAN's own values", func(h *KeaHA) {
			h.LAN.NTP, h.LAN.LeaseTime, h.LAN.Serve, h.LAN.VendorOptions, h.LAN.Authoritative = []netip.Addr{mustAddr("10.77.0.1")}, 2*time.Hour, dhcp.ServePhones, true, true
			h.LAN.Router, h.LAN.DNS = mustAddr("10.77.0.254"), []netip.Addr{mustAddr("10.77.0.53")}
		}, nil, map[string]any{
			"authoritative":                                      true,
			"subnet4.0.pools.0.pool":                             "10.77.0.100 - 10.77.0.150",
			"subnet4.0.option-data#routers.data":                 "10.77.0.254",
			"subnet4.0.option-data#domain-name-servers.data":     "10.77.0.53",
			"subnet4.0.option-data#ntp-servers.data":             "10.77.0.1",
			"subnet4.0.valid-lifetime":                           7200.0,
			"client-classes.0.option-data#tftp-server-name.data": testURL,
		}, []string{`dhcp.serve = "phones" is not carried over`, "dhcp.vendor_options is not carried over"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ha := haPair(tc.subnets...)
			if tc.edit != nil {
				tc.edit(&ha)
			}
			pri, sb, err := KeaHAPair(p, ha)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{pri, sb} {
				header, d4 := keaFile(t, text)
				for path, want := range tc.want {
					if got := jsonPath(d4, path); !reflect.DeepEqual(got, want) {
						t.Errorf("%s = %#v, want %#v", path, got, want)
					}
				}
				for _, h := range tc.header {
					if !strings.Contains(header, h) {
						t.Errorf("header lacks %q:\n%s", h, header)
					}
				}
			}
		})
	}
}

// jsonPath is jsonAt for "a.0.b"; "list#x" picks option-data entry x
// (a code or a name) of list.
func jsonPath(d4 map[string]any, path string) any {
	var v any = d4
	for _, part := range strings.Split(path, ".") {
		key, opt, isOpt := strings.Cut(part, "#")
		if n, err := strconv.Atoi(key); err == nil {
			v = jsonAt(v, n)
		} else {
			v = jsonAt(v, key)
		}
		if isOpt {
			var m map[string]any
			if n, err := strconv.Atoi(opt); err == nil {
				m = optionData(v, n)
			} else {
				m = optionData(v, opt)
			}
			if m == nil {
				return nil
			}
			v = m
		}
	}
	return v
}

func TestKeaHAPairSubnetRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*dhcp.Options)
		want string
	}{
		{"overlaps the LAN", func(o *dhcp.Options) { o.Subnet = mustPrefix("10.77.0.0/16") }, "dhcp.subnets[0].network: 10.77.0.0/16 overlaps 10.77.0.0/24"},
		{"no network", func(o *dhcp.Options) { o.Subnet = netip.Prefix{} }, "dhcp.subnets[0].network"},
		{"no pool", func(o *dhcp.Options) { o.PoolStart = netip.Addr{} }, "dhcp.subnets[0].pool"},
		{"no URL", func(o *dhcp.Options) { o.UpdateServer = "" }, "dhcp.subnets[0].update_server"},
		{"URL with a quote", func(o *dhcp.Options) { o.UpdateServer = `http://10.30.0.1/"` }, "dhcp.subnets[0].update_server"},
		{"file name with a comma", func(o *dhcp.Options) { o.UpdateFilename = "a,b" }, "dhcp.subnets[0].update_filename"},
		{"domain with a comma", func(o *dhcp.Options) { o.Domain = "a,b" }, "dhcp.subnets[0].domain"},
		{"bad option value", func(o *dhcp.Options) { o.ExtraOptions = []dhcp.ExtraOption{{Code: 150, Type: "ipv4", Value: "nope"}} }, "dhcp.subnets[0].options[0]"},
		{"reservation off the subnet", func(o *dhcp.Options) {
			o.Reservations = []dhcp.Reservation{{MAC: phone.MAC{0, 4, 0x13, 0, 0, 1}, IP: mustAddr("10.31.0.5")}}
		}, "dhcp.subnets[0].reservations[0].ip"},
	} {
		sn := relayedSubnet()
		tc.edit(&sn)
		p, ha := haPair(sn)
		if _, _, err := KeaHAPair(p, ha); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// The pair with a local and a relayed subnet passes Kea's own check, on a
// namespace host that has the local subnet's VLAN interface.
func TestKeaHAPairSubnetsLoad(t *testing.T) {
	t.Parallel()
	kea := needTool(t, "kea-dhcp4")
	hooks := keaHooksDir(t)
	l := lantest.New(t, lanSubnet)
	h := l.AddHost("kea1", lantest.HostOptions{Addr: "10.77.0.2/24"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Kea needs an interface of that name with an address, not a VLAN: a
	// veth pair stands in for it (kernels without 8021q have no vlan type).
	for _, args := range [][]string{
		{"link", "add", "eth0.20", "type", "veth", "peer", "name", "vlan20peer"},
		{"addr", "add", "10.20.0.2/24", "dev", "eth0.20"},
		{"link", "set", "eth0.20", "up"},
	} {
		if out, err := h.Run(ctx, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	for _, lanPool := range []bool{true, false} { // false: subnets only
		p, ha := haPair(localSubnet(), relayedSubnet())
		ha.HooksDir, ha.LeaseFile = hooks, filepath.Join(t.TempDir(), "leases4.csv")
		if !lanPool {
			ha.LAN.PoolStart, ha.LAN.PoolEnd = netip.Addr{}, netip.Addr{}
		}
		pri, sb, err := KeaHAPair(p, ha)
		if err != nil {
			t.Fatal(err)
		}
		for role, conf := range map[string]string{"primary": pri, "standby": sb} {
			path := filepath.Join(t.TempDir(), "kea-dhcp4.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := h.Run(ctx, kea, "-t", path); err != nil {
				t.Errorf("kea-dhcp4 -t rejects the %s config (LAN pool %v): %v\n%s\n%s", role, lanPool, err, out, conf)
			}
		}
	}
}
