package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/snomprov/snomprov/app"
	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

func init() {
	register("check", "validate the configuration and render every configured phone", cmdCheck)
	register("render", "print exactly the files a phone would receive", cmdRender)
}

// advertised finds the address phones would reach us on, for URLs written
// into rendered files. Without a usable interface (check run on another
// machine) it returns the zero Addr and a note.
func advertised(cfg *config.Config) (netip.Addr, netip.Prefix, string) {
	if cfg.Server.Advertise.IsValid() && cfg.Server.Interface == "" {
		return cfg.Server.Advertise, netip.Prefix{}, ""
	}
	ifname := cfg.Server.Interface
	if ifname == "" {
		var err error
		if ifname, err = netif.DefaultRouteInterface(); err != nil {
			return cfg.Server.Advertise, netip.Prefix{}, err.Error()
		}
	}
	pfx, err := netif.IPv4(ifname)
	if err != nil {
		return cfg.Server.Advertise, netip.Prefix{}, err.Error()
	}
	if cfg.Server.Advertise.IsValid() {
		return cfg.Server.Advertise, pfx, ""
	}
	return pfx.Addr(), pfx, ""
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[-config FILE]", stderr)
	path := configFlag(fs, true)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	name := cfg.Source
	if name == "" {
		name = "embedded defaults"
	}
	addr, pfx, note := advertised(cfg)
	if pfx.IsValid() {
		if err := cfg.ValidateNetwork(pfx); err != nil {
			return configError{err}
		}
	} else if cfg.DHCP.Enabled {
		fmt.Fprintf(stdout, "note: the DHCP pool was not checked against the interface: %s\n", note)
	}
	if err := app.CheckInventory(cfg); err != nil {
		return configError{err}
	}
	catalog, err := provision.New(cfg)
	if err != nil {
		return configError{fmt.Errorf("%s: %w", name, err)}
	}
	base := app.BaseURL(cfg, catalog, addr)
	files, anyModel := 0, 0
	for _, p := range cfg.Phones {
		out, err := catalog.Files(p.MAC, p.Model, base, false)
		if errors.Is(err, provision.ErrNoModel) {
			// The phone's type comes from its request; its own file does
			// not depend on it, so render it for any type to check it.
			anyModel++
			out, err = catalog.Files(p.MAC, "snomD785", base, false)
		}
		if err != nil {
			return configError{fmt.Errorf("%s: phone %s: %w", name, p.MAC, err)}
		}
		files += len(out)
	}
	fmt.Fprintf(stdout, "%s: ok (%d phones, %d models, %d files rendered; setting server URL %s)\n",
		name, len(cfg.Phones), len(cfg.Models), files, cfg.SettingURL(addr))
	if anyModel > 0 {
		fmt.Fprintf(stdout, "note: %d phone(s) have no model; their type is taken from each request's User-Agent or path\n", anyModel)
	}
	return nil
}

func cmdRender(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("render", "[-config FILE] [--model snomD785] [--show-secrets] MAC", stderr)
	path := configFlag(fs, true)
	model := fs.String("model", "", "phone `TYPE` (e.g. snomD785); default: the phone's [[phones]] model")
	show := fs.Bool("show-secrets", false, "print passwords and PINs instead of ********")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"expected exactly one MAC address"}
	}
	mac, err := phone.ParseMAC(rest[0])
	if err != nil {
		return usageError{err.Error()}
	}
	if *model != "" && !phone.ValidModel(*model) {
		return usageError{fmt.Sprintf("--model %q is not a Snom phone type (like snomD785)", *model)}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	catalog, err := provision.New(cfg)
	if err != nil {
		return configError{err}
	}
	addr, _, note := advertised(cfg)
	if note != "" {
		fmt.Fprintf(stderr, "note: %s; URLs below use %s\n", note, cfg.SettingURL(addr))
	}
	files, err := catalog.Files(mac, *model, app.BaseURL(cfg, catalog, addr), *show)
	if errors.Is(err, provision.ErrNoModel) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	for i, f := range files {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "==> %s <==\n", f.Path)
		stdout.Write(f.Body)
		if len(f.Body) > 0 && f.Body[len(f.Body)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
	}
	return nil
}
