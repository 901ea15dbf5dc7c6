package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/routerconfig"
)

func init() {
	register("router-config", "print the DHCP snippet that sends phones to this appliance (options 66/67) for a router that keeps DHCP", cmdRouterConfig)
}

func cmdRouterConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("router-config", "--for "+strings.Join(routerconfig.Targets(), "|"), stderr)
	path := configFlag(fs, true)
	target := fs.String("for", "", "the DHCP server to configure: `"+strings.Join(routerconfig.Targets(), "|")+"`")
	subnet := fs.String("subnet", "", "the phones' `SUBNET` (e.g. 192.168.1.0/24); default: the LAN interface's")
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
	out, err := routerconfig.Generate(*target, p)
	if err != nil {
		return usageError{err.Error()}
	}
	fmt.Fprint(stdout, out)
	return nil
}
