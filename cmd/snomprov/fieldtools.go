package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/doctor"
	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/internal/tlsca"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/resync"
	"github.com/snomprov/snomprov/simulate"
)

func init() {
	register("simulate", "boot simulated Snom phones on the LAN (DHCP, PnP, settings, firmware) and report each step", cmdSimulate)
	register("doctor", "check the LAN for DHCP servers, PnP responders, ports and multicast, and recommend a mode", cmdDoctor)
	register("resync", "ask phones to re-read their settings (SIP NOTIFY check-sync)", cmdResync)
}

// interruptible is a context that Ctrl-C ends, so a tool stops cleanly.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// lanInterface is the -interface flag's default: [server] interface, else
// the interface of the default route.
func lanInterface(flagValue, configPath string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if configPath != "" {
		cfg, err := loadConfig(configPath)
		if err != nil {
			return "", err
		}
		if cfg.Server.Interface != "" {
			return cfg.Server.Interface, nil
		}
	}
	ifname, err := netif.DefaultRouteInterface()
	if err != nil {
		return "", usageError{"no -interface given and " + err.Error()}
	}
	return ifname, nil
}

func cmdSimulate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("simulate", "[-interface IF] [--model snomD785] [--mac M] [--count N]", stderr)
	path := configFlag(fs, true)
	ifname := fs.String("interface", "", "LAN `interface` to boot the phones on (default: [server] interface, else the default route's)")
	model := fs.String("model", "snomD785", "phone `TYPE` to claim")
	macText := fs.String("mac", "", "first phone's `MAC` (default: a random 00:04:13 address)")
	count := fs.Int("count", 1, "`N` phones booting at once (MACs count up)")
	fw := fs.String("firmware", "10.1.33.33", "firmware `VERSION` the phones claim")
	timeout := fs.Duration("timeout", 5*time.Second, "per-step `timeout`")
	noDHCP := fs.Bool("no-dhcp", false, "skip DHCP")
	noPnP := fs.Bool("no-pnp", false, "skip the PnP SUBSCRIBE")
	noFirmware := fs.Bool("no-firmware", false, "stop after the settings files")
	caFile := fs.String("ca", "", "`PEM` CA the phone trusts for HTTPS (default: the config's state_dir/tls/ca.crt when it exists)")
	clientCert := fs.String("client-cert", "", "device certificate `PEM` the phone presents over HTTPS")
	clientKey := fs.String("client-key", "", "its private key `PEM`")
	asJSON := fs.Bool("json", false, "print the report as JSON (every step with its duration in ns) instead of the step lines")
	err := parseNoArgs(fs, args)
	if err != nil {
		return err
	}
	o := simulate.Options{Model: *model, Count: *count, Firmware: *fw, Timeout: *timeout, NoDHCP: *noDHCP, NoPnP: *noPnP, NoFirmware: *noFirmware,
		CAFile: *caFile, ClientCert: *clientCert, ClientKey: *clientKey}
	if (o.ClientCert == "") != (o.ClientKey == "") {
		return usageError{"--client-cert and --client-key go together"}
	}
	if o.CAFile == "" {
		o.CAFile = applianceCA(*path)
	}
	if !phone.ValidModel(o.Model) {
		return usageError{fmt.Sprintf("--model %q is not a Snom phone type (like snomD785)", o.Model)}
	}
	if *macText != "" {
		if o.MAC, err = phone.ParseMAC(*macText); err != nil {
			return usageError{err.Error()}
		}
	}
	if o.Count < 1 {
		return usageError{"--count must be at least 1"}
	}
	if o.Interface, err = lanInterface(*ifname, *path); err != nil {
		return err
	}
	ctx, stop := interruptible()
	defer stop()
	if !*asJSON {
		_, err = simulate.Run(ctx, o, stdout)
		return err
	}
	rep, err := simulate.Run(ctx, o, io.Discard)
	if rep.Phones == nil && err != nil {
		return err // it did not start
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if jerr := enc.Encode(rep); jerr != nil {
		return jerr
	}
	return err
}

func cmdDoctor(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("doctor", "[-interface IF]", stderr)
	path := configFlag(fs, true)
	ifname := fs.String("interface", "", "LAN `interface` to check (default: [server] interface, else the default route's)")
	timeout := fs.Duration("timeout", doctor.DefaultTimeout, "how long to collect DHCP and PnP answers")
	err := parseNoArgs(fs, args)
	if err != nil {
		return err
	}
	o := doctor.Options{Timeout: *timeout}
	if o.Interface, err = lanInterface(*ifname, *path); err != nil {
		return err
	}
	if *path != "" {
		cfg, err := loadConfig(*path)
		if err != nil {
			return err
		}
		lan, _ := plan.ResolveLAN(cfg)
		addr := lan.Advertise
		o.SelfURL = cfg.SettingURL(addr)
		// Without a pool [dhcp] serves only its subnets (dhcp.Prepare); with
		// no subnets either, `check` reports the file's error.
		o.LANNotServed = cfg.DHCP.Enabled && cfg.DHCP.SubnetsOnly()
		if cfg.HTTPS() {
			o.HTTPSURL = plan.HTTPSURL(cfg, addr)
			o.CertFile = cfg.HTTP.TLSCert
			if o.CertFile == "" {
				o.CertFile = filepath.Join(plan.TLSDir(cfg), tlsca.CertFile)
				o.CAFile = filepath.Join(plan.TLSDir(cfg), tlsca.CAFile)
			}
		}
		if o.Firmware, err = doctorFirmware(cfg, lan, *path); err != nil {
			fmt.Fprintf(stderr, "doctor: firmware rollouts and the loop guard are not checked: %v\n", err)
		}
	}
	ctx, stop := interruptible()
	defer stop()
	_, err = doctor.Run(ctx, o, stdout)
	return err
}

// doctorFirmware reads what doctor needs of the running appliance's
// firmware: the configuration's rollouts and its inventory's phones (the
// state_dir snapshot the appliance writes, or the shared PostgreSQL one).
func doctorFirmware(cfg *config.Config, lan plan.LAN, path string) (*doctor.Firmware, error) {
	p, err := plan.Compile(cfg, lan, plan.Runtime{}) // serve's compile, as check runs it
	if err != nil {
		return nil, fmt.Errorf("the configuration does not compile (snomprov check): %w", err)
	}
	list, _, err := loadInventoryConfig(path, "", false)
	if err != nil {
		return nil, fmt.Errorf("reading the inventory: %w", err)
	}
	return &doctor.Firmware{Rollouts: p.Catalog.Rollouts(), Phones: list, Now: time.Now()}, nil
}

func cmdResync(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("resync", "[--reboot] (MAC… | --all | --state S)", stderr)
	path := configFlag(fs, true)
	reboot := fs.Bool("reboot", false, "reboot the phones too (check-sync;reboot=true)")
	all := fs.Bool("all", false, "every phone in the inventory with a known address")
	state := fs.String("state", "", "every phone in `STATE` (e.g. failed, stale)")
	timeout := fs.Duration("timeout", resync.DefaultTimeout, "how long to wait for each phone's answer")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if (len(rest) > 0) == (*all || *state != "") || (*all && *state != "") {
		return usageError{"name phones by MAC, or use --all, or --state S (exactly one of these)"}
	}
	// Only this site's phones: another site's addresses are not on this LAN.
	list, stale, err := loadInventory(*path, "", true)
	if err != nil {
		return err
	}
	byMAC := make(map[phone.MAC]inventory.Phone, len(list))
	for _, p := range list {
		byMAC[p.MAC] = p
	}
	var targets []resync.Target
	add := func(p inventory.Phone) error {
		ip, err := netip.ParseAddr(p.IP)
		if err != nil {
			return fmt.Errorf("phone %s has no known address yet", p.MAC)
		}
		targets = append(targets, resync.Target{MAC: p.MAC, Addr: netip.AddrPortFrom(ip, resync.DefaultPort)})
		return nil
	}
	for _, arg := range rest {
		m, err := phone.ParseMAC(arg)
		if err != nil {
			return usageError{err.Error()}
		}
		p, ok := byMAC[m]
		if !ok {
			return fmt.Errorf("phone %s has not been seen, so its address is unknown (snomprov phones lists the known ones)", m)
		}
		if err := add(p); err != nil {
			return err
		}
	}
	if *all || *state != "" {
		now := time.Now()
		for _, p := range list {
			if st, _ := p.State(now, stale); *state != "" && string(st) != *state {
				continue
			}
			if add(p) != nil {
				fmt.Fprintf(stderr, "skipping %s: no known address\n", p.MAC)
			}
		}
	}
	if len(targets) == 0 {
		return errors.New("no phones selected")
	}
	ctx, stop := interruptible()
	defer stop()
	_, err = resync.Run(ctx, resync.Options{Targets: targets, Reboot: *reboot, Timeout: *timeout}, stdout)
	return err
}

// applianceCA is the CA snomprov made for the configuration at path, when
// it exists: the CA a phone is handed for HTTPS.
func applianceCA(path string) string {
	cfg, err := loadConfig(path)
	if err != nil {
		return ""
	}
	ca := filepath.Join(plan.TLSDir(cfg), tlsca.CAFile)
	if _, err := os.Stat(ca); err != nil {
		return ""
	}
	return ca
}
