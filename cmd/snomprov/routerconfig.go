package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/routerconfig"
)

func init() {
	register("router-config", "print the DHCP snippet that sends phones to this appliance (options 66/67) for a router that keeps DHCP", cmdRouterConfig)
}

func cmdRouterConfig(args []string, stdout, stderr io.Writer) error {
	targets := strings.Join(append(routerconfig.Targets(), routerconfig.KeaHATarget), "|")
	fs := newFlags("router-config", "--for "+targets+" (kea-ha: --primary IP --standby IP [--out DIR])", stderr)
	path := configFlag(fs, true)
	target := fs.String("for", "", "the DHCP server to configure: `"+targets+"`")
	subnet := fs.String("subnet", "", "the phones' `SUBNET` (e.g. 192.168.1.0/24); default: the LAN interface's")
	var ha routerconfig.KeaHA
	primary := fs.String("primary", "", "kea-ha: the primary Kea server's `IP` on the phones' LAN")
	standby := fs.String("standby", "", "kea-ha: the standby Kea server's `IP` on the phones' LAN")
	pool := fs.String("pool", "", "kea-ha: the `RANGE` both lease from, e.g. 10.0.0.100-10.0.0.199; default [dhcp] pool")
	fs.StringVar(&ha.Interface, "interface", "eth0", "kea-ha: the `INTERFACE` Kea listens on")
	fs.StringVar(&ha.HooksDir, "hooks-dir", routerconfig.DebianKeaHooks, "kea-ha: the `DIR` of libdhcp_ha.so and libdhcp_lease_cmds.so on the Kea servers")
	fs.StringVar(&ha.LeaseFile, "lease-file", "/var/lib/kea/kea-leases4.csv", "kea-ha: Kea's lease `FILE`")
	fs.DurationVar(&ha.HeartbeatDelay, "heartbeat", 10*time.Second, "kea-ha: how often the peers check each other")
	fs.DurationVar(&ha.MaxResponseDelay, "takeover-after", 60*time.Second, "kea-ha: how long the primary may be silent before the standby serves")
	out := fs.String("out", "", "kea-ha: write kea-dhcp4-primary.conf and kea-dhcp4-standby.conf into `DIR` instead of printing both")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *target == "" {
		return usageError{"--for is required: one of " + strings.Join(routerconfig.Targets(), ", ")}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	lan, lanErr := plan.ResolveLAN(cfg)
	addr := lan.Advertise
	if !addr.IsValid() {
		addr = cfg.Server.Advertise
	}
	p := routerconfig.Params{SettingURL: cfg.DHCP.UpdateServer, Filename: cfg.DHCP.UpdateFilename, Subnet: lan.Prefix.Masked()}
	if p.SettingURL == "" {
		p.SettingURL = cfg.SettingURL(addr)
	}
	if *subnet != "" {
		if p.Subnet, err = netip.ParsePrefix(*subnet); err != nil {
			return usageError{fmt.Sprintf("--subnet %q: %v", *subnet, err)}
		}
		p.Subnet = p.Subnet.Masked()
	}
	if lanErr != nil && !addr.IsValid() {
		return fmt.Errorf("cannot tell this appliance's address (%v); set [server] advertise or [http] url", lanErr)
	}
	if *target == routerconfig.KeaHATarget {
		if ha.LAN, err = keaPrepared(cfg, lan, lanErr, *pool, p.Subnet); err != nil {
			return err
		}
		ha.Subnets, ha.LAN.Subnets = ha.LAN.Subnets, nil
		return keaHA(p, ha, *primary, *standby, *out, stdout)
	}
	text, err := routerconfig.Generate(*target, p)
	if err != nil {
		return usageError{err.Error()}
	}
	fmt.Fprint(stdout, text)
	return nil
}

// keaHA writes the Kea hot-standby pair of the prepared ha.LAN and
// ha.Subnets.
func keaHA(p routerconfig.Params, ha routerconfig.KeaHA, primary, standby, out string, stdout io.Writer) error {
	var err error
	if ha.Primary, err = netip.ParseAddr(primary); err != nil {
		return usageError{fmt.Sprintf("--primary %q: the primary Kea server's IPv4 address is required", primary)}
	}
	if ha.Standby, err = netip.ParseAddr(standby); err != nil {
		return usageError{fmt.Sprintf("--standby %q: the standby Kea server's IPv4 address is required", standby)}
	}
	pri, sb, err := routerconfig.KeaHAPair(p, ha)
	if err != nil {
		return usageError{err.Error()}
	}
	if out == "" {
		fmt.Fprint(stdout, pri, "\n", sb)
		return nil
	}
	for name, text := range map[string]string{"kea-dhcp4-primary.conf": pri, "kea-dhcp4-standby.conf": sb} {
		path := filepath.Join(out, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", path)
	}
	return nil
}

// keaPrepared is [dhcp], its [[dhcp.subnets]] among them, as serve
// compiles it, with [dhcp] enabled and --pool (if given) as its pool: the
// compile is where their rules and each subnet's option 66 URL live, so
// the pair hands out what snomprov would, and what check refuses, kea-ha
// refuses too. It compiles against this machine's LAN when the phones'
// subnet is that LAN's; otherwise (--subnet names another, or the LAN was
// not found) as check does away from the machine, which a local subnet
// cannot be (its URL names this machine's address on it).
func keaPrepared(cfg *config.Config, lan plan.LAN, lanErr error, pool string, phones netip.Prefix) (dhcp.Options, error) {
	rt := plan.Runtime{InterfaceExists: plan.InterfaceExists, Interfaces: plan.Interfaces}
	if lanErr != nil || lan.Prefix.Masked() != phones {
		for i, sn := range cfg.DHCP.Subnets {
			if sn.Interface != "" {
				why := fmt.Sprintf("--subnet %v is not this machine's LAN", phones)
				if lanErr != nil {
					why = fmt.Sprintf("this machine's LAN was not found (%v)", lanErr)
				}
				return dhcp.Options{}, fmt.Errorf("dhcp.subnets[%d]: kea-ha gives a local subnet the URL of this machine's address on %s, and %s: run it on the appliance without --subnet", i, sn.Interface, why)
			}
		}
		lan, rt = plan.LAN{}, plan.Runtime{}
	}
	cfg.DHCP.Enabled = true
	if pool != "" {
		cfg.DHCP.Pool = pool
	}
	p, err := plan.Compile(cfg, lan, rt)
	if err != nil {
		return dhcp.Options{}, configError{fmt.Errorf("kea-ha takes [dhcp] as serve runs it, enabled, with --pool as its pool if given: %w", err)}
	}
	defer p.Close()
	return p.DHCP.Options(), nil
}
