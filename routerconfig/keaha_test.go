package routerconfig

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/lantest"
)

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestKeaHAPairRejects(t *testing.T) {
	p := Params{SettingURL: testURL, Subnet: mustPrefix(lanSubnet)}
	good := KeaHA{Primary: mustAddr("10.77.0.2"), Standby: mustAddr("10.77.0.3"), PoolFirst: mustAddr("10.77.0.100"), PoolLast: mustAddr("10.77.0.150")}
	for _, tc := range []struct {
		name string
		edit func(*KeaHA)
		want string
	}{
		{"same server twice", func(h *KeaHA) { h.Standby = h.Primary }, "two different IPv4 addresses"},
		{"server off the subnet", func(h *KeaHA) { h.Standby = mustAddr("10.78.0.3") }, "not in the phones' subnet"},
		{"pool off the subnet", func(h *KeaHA) { h.PoolLast = mustAddr("10.77.1.5") }, "not inside the subnet"},
		{"no pool", func(h *KeaHA) { h.PoolFirst = netip.Addr{} }, "needs a pool"},
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
// serves the phones; killed, the standby takes over and hands out the
// phone options.
func TestKeaHAFailover(t *testing.T) {
	t.Parallel()
	kea := needTool(t, "kea-dhcp4")
	needTool(t, "dhclient")
	hooks := keaHooksDir(t)
	l := lantest.New(t, lanSubnet)
	srvs := []*lantest.Host{
		l.AddHost("kea1", lantest.HostOptions{Addr: "10.77.0.2/24"}),
		l.AddHost("kea2", lantest.HostOptions{Addr: "10.77.0.3/24"}),
	}
	dir := t.TempDir()
	ha := KeaHA{Primary: mustAddr("10.77.0.2"), Standby: mustAddr("10.77.0.3"),
		PoolFirst: mustAddr("10.77.0.100"), PoolLast: mustAddr("10.77.0.150"), HooksDir: hooks,
		HeartbeatDelay: time.Second, MaxResponseDelay: 3 * time.Second}
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
		out, err := exec.CommandContext(ctx, kea, "-t", confPath).CombinedOutput()
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
}
