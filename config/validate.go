package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

// checker runs the semantic checks after decoding. A key the decoder already
// reported is not reported again (its value is only a default by now).
type checker struct {
	*decoder
	cfg      *Config
	reported map[string]bool
}

func (c *checker) fail(path, format string, args ...any) {
	if c.reported[path] {
		return
	}
	c.reported[path] = true
	c.decoder.fail(path, format, args...)
}

func oneOf(v string, allowed ...string) bool { return slices.Contains(allowed, v) }

func (c *checker) enum(path, v string, allowed ...string) {
	if !oneOf(v, allowed...) {
		c.fail(path, "%s", field.NotOneOf(v, allowed...))
	}
}

func (c *checker) validate() {
	cfg := c.cfg
	// [http], [pnp] and [dhcp] are checked by their servers' own Prepare
	// in the compile step (package plan); only what no server owns is here.
	c.server()
	if !ValidPerm(cfg.Provision.DefaultPerm) {
		c.fail("provision.default_perm", "%s", permProblem(cfg.Provision.DefaultPerm))
	}
	if cfg.Status.StaleAfter.Duration <= 0 {
		c.fail("status.stale_after", `must be positive, like "24h"`)
	}
	if cfg.Status.AdminUser != "" && cfg.Status.AdminPassword == "" {
		c.fail("status.admin_user", "admin_user is set but admin_password is not; set both, or neither to leave the status page open")
	}
	c.models()
	c.phones()
	for i, e := range cfg.Phonebook {
		at := indexKey("phonebook", i)
		if e.Name == "" && e.Number == "" {
			c.fail(at, "a phonebook entry needs a name and a number")
		} else if e.Number == "" {
			c.fail(joinKey(at, "number"), "a phonebook entry needs a number")
		}
		c.enum(joinKey(at, "type"), e.Type, PhonebookTypes...)
	}
}

func (c *checker) server() {
	s := c.cfg.Server
	if s.Interface != "" {
		c.interfaceName("server.interface", s.Interface)
	}
	if s.Advertise.IsValid() && !s.Advertise.Unmap().Is4() {
		c.fail("server.advertise", "must be an IPv4 address (phones provision over IPv4), like \"10.0.0.2\"")
	}
	if s.StateDir == "" {
		c.fail("server.state_dir", `must not be empty; leave it out for the default "`+DefaultStateDir+`"`)
	}
	c.enum("server.log_level", s.LogLevel, "debug", "info", "warn", "error")
}

// interfaceName accepts what Linux accepts as an interface name.
func (c *checker) interfaceName(path, name string) {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t") {
		c.fail(path, "%q is not a network interface name; use a name from `ip link`, like \"eth0\"", name)
	}
}

func (c *checker) models() {
	for _, name := range sortedModelNames(c.cfg.Models) {
		at := joinKey("models", name)
		if !phone.ValidModel(name) {
			c.fail(at, "%q is not a Snom phone type; write it as the phone reports it, like \"snomD785\"", name)
			continue
		}
		m := c.cfg.Models[name]
		c.firmware(joinKey(at, "firmware"), m.Firmware)
		c.firmware(joinKey(at, "firmware_uxm"), m.FirmwareUXM)
	}
}

// firmware accepts an absolute http(s) URL, or a file that exists in firmware_dir.
func (c *checker) firmware(path, fw string) {
	if err := FirmwareImageProblem(c.cfg.HTTP.FirmwareDir, fw); err != "" {
		c.fail(path, "%s", err)
	}
}

// FirmwareImageProblem says what is wrong with an image of a firmware key
// (models', groups' and phones' firmware and firmware_uxm): it must be an
// absolute http(s) URL or a file in firmwareDir. Empty is no problem.
func FirmwareImageProblem(firmwareDir, fw string) string {
	if fw == "" {
		return ""
	}
	if strings.Contains(fw, "://") {
		return urlProblem(fw)
	}
	clean := filepath.Clean(fw)
	if filepath.IsAbs(fw) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Sprintf("%q must be a file name inside firmware_dir (%s) or an absolute http:// URL", fw, firmwareDir)
	}
	full := filepath.Join(firmwareDir, clean)
	if st, err := os.Stat(full); err != nil || !st.Mode().IsRegular() {
		return fmt.Sprintf("firmware file %s not found in firmware_dir %s; copy the image there or give an absolute URL", fw, firmwareDir)
	}
	return ""
}

func (c *checker) phones() {
	first := map[phone.MAC]int{}
	for i, p := range c.cfg.Phones {
		at := indexKey("phones", i)
		switch j, dup := first[p.MAC]; {
		case p.MAC.IsZero():
			c.fail(joinKey(at, "mac"), `a phone needs a mac, like mac = "00:04:13:A1:1F:A7"`)
		case dup:
			hint := "merge the two entries"
			if c.pos.lookup(at).File != "" || c.pos.lookup(indexKey("phones", j)).File != "" {
				hint = "a phone is listed once, in [[phones]] or in a phones CSV: merge the two"
			}
			c.fail(joinKey(at, "mac"), "duplicate phone: MAC %s is also %s; %s", p.MAC, c.where(indexKey("phones", j)), hint)
		default:
			first[p.MAC] = i
		}
		if p.Model != "" && !phone.ValidModel(p.Model) {
			c.fail(joinKey(at, "model"), "%q is not a Snom phone type; write it as the phone reports it, like \"snomD785\"", p.Model)
		}
	}
}

// where names the place of a key for a message: "phones[2] (line 14)", or
// "the row at phones.csv line 3" for a phone from a CSV.
func (c *checker) where(key string) string {
	p := c.pos.lookup(key)
	if p.File != "" {
		return fmt.Sprintf("the row at %s line %d", filepath.Base(p.File), p.Line)
	}
	return fmt.Sprintf("%s (line %d)", key, p.Line)
}

func sortedModelNames(m map[string]Model) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// url accepts an absolute http or https URL with a host.
func (c *checker) url(path, raw string) {
	if msg := urlProblem(raw); msg != "" {
		c.fail(path, "%s", msg)
	}
}

func urlProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("%q is not an absolute http:// or https:// URL with a host; write it like \"http://10.0.0.2/\", or leave it empty for the default", raw)
	}
	return ""
}
