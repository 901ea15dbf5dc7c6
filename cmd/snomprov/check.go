package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/provision"
)

func init() {
	register("check", "validate the configuration and render every configured phone", cmdCheck)
	register("render", "print exactly the files a phone would receive", cmdRender)
}

// lanFlags are check's and render's way to say where the appliance sits
// when that is not this machine (an installer checking a Pi's file on a
// laptop).
type lanFlags struct{ iface, network *string }

func addLANFlags(fs *flag.FlagSet) lanFlags {
	return lanFlags{
		iface:   fs.String("interface", "", "the LAN interface `NAME` (default: server.interface, else the default route's)"),
		network: fs.String("network", "", "the appliance's LAN address and subnet, `ADDRESS/BITS` (e.g. 10.0.0.2/24), when checking a file away from the machine it runs on"),
	}
}

// compile runs the compile `serve` runs, on the LAN the flags or this
// machine give. It returns the plan, or the config error, and a note when
// the LAN could not be found.
func (f lanFlags) compile(cfg *config.Config) (*plan.Plan, string, error) {
	return f.compileDecoded(cfg, nil)
}

// compileDecoded is compile for what config.Decode returned, problems
// included, so check lists the file's every problem at once.
func (f lanFlags) compileDecoded(cfg *config.Config, decodeErr error) (*plan.Plan, string, error) {
	if cfg == nil {
		return nil, "", configError{decodeErr}
	}
	if *f.iface != "" {
		cfg.Server.Interface = *f.iface
	}
	var lan plan.LAN
	rt, note := plan.Runtime{}, ""
	if *f.network != "" {
		pfx, err := netip.ParsePrefix(*f.network)
		if err != nil || !pfx.Addr().Is4() {
			return nil, "", usageError{fmt.Sprintf("-network %q is not an IPv4 address with its prefix length, like 10.0.0.2/24", *f.network)}
		}
		lan = plan.LAN{Interface: cfg.Server.Interface, Prefix: pfx}
	} else if l, err := plan.ResolveLAN(cfg); err == nil {
		lan, rt.InterfaceExists, rt.Interfaces = l, plan.InterfaceExists, plan.Interfaces
	} else {
		note = fmt.Sprintf("the LAN was not found on this machine (%v); give -network ADDRESS/BITS to check against it", err)
	}
	p, err := plan.CompileDecoded(cfg, decodeErr, lan, rt)
	if err != nil {
		return nil, note, configError{err}
	}
	return p, note, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[-config FILE] [-interface NAME] [-network ADDRESS/BITS]", stderr)
	path := configFlag(fs, true)
	lf := addLANFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, decodeErr := config.Default(), error(nil)
	if *path != "" {
		cfg, decodeErr = config.DecodeFile(*path)
	}
	p, note, err := lf.compileDecoded(cfg, decodeErr)
	if note != "" {
		fmt.Fprintf(stdout, "note: %s\n", note)
	}
	for _, w := range plan.WarningsOf(err) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	defer p.Close()
	name := cfg.FileName()
	files, anyModel := 0, 0
	for _, ph := range cfg.Phones {
		out, err := p.Catalog.Files(ph.MAC, ph.Model, p.BaseURL, false)
		if errors.Is(err, provision.ErrNoModel) {
			// The phone's type comes from its request; its own file does
			// not depend on it, so render it for any type to check it.
			anyModel++
			out, err = p.Catalog.Files(ph.MAC, "snomD785", p.BaseURL, false)
		}
		if err != nil {
			return configError{fmt.Errorf("%s: phone %s: %w", name, ph.MAC, err)}
		}
		files += len(out)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(stdout, "not checked: %s\n", s)
	}
	fmt.Fprintf(stdout, "%s: ok (%d phones, %d models, %d files rendered; setting server URL %s)\n",
		name, len(cfg.Phones), len(cfg.Models), files, redact.URL(p.SettingURL))
	if p.DHCP != nil {
		if o := p.DHCP.Options(); !o.ServesLAN() {
			lan := "the LAN"
			if o.Subnet.IsValid() {
				lan += " (" + o.Subnet.String() + ")"
			}
			how := "phones there find this appliance by PnP"
			if !cfg.PnP.Enabled {
				how = "PnP is off, so phones there need option 66 from that server (snomprov router-config)"
			}
			fmt.Fprintf(stdout, "note: DHCP serves only its %d [[dhcp.subnets]], not %s: [dhcp] has no pool, so the LAN's own server answers there; %s\n", len(o.Subnets), lan, how)
		}
	}
	if anyModel > 0 {
		fmt.Fprintf(stdout, "note: %d phone(s) have no model; their type is taken from each request's User-Agent or path\n", anyModel)
	}
	return nil
}

func cmdRender(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("render", "[-config FILE] [-interface NAME] [-network ADDRESS/BITS] [--model snomD785] [--show-secrets] MAC", stderr)
	path := configFlag(fs, true)
	lf := addLANFlags(fs)
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
	p, note, err := lf.compile(cfg)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(stderr, "note: %s; URLs below use %s\n", note, redact.URL(p.SettingURL))
	}
	defer p.Close()
	files, err := p.Catalog.Files(mac, *model, p.BaseURL, *show)
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
