package provision

import (
	"regexp"
	"slices"
	"strings"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

// Firmware is the image a phone is pointed at: its own ([[phones]]
// firmware), its group's, or its model's, in that order.
type Firmware struct {
	Image, UXM string
	// Model is the phone type whose firmware file hands it out.
	Model string
	// Scope is the config key the image comes from: phones[3],
	// groups.sales or models.snomD785.
	Scope string
	// Rollout is the staged rollout the image goes out in; nil for a
	// phone's own image and for a scope without canaries.
	Rollout *rollout.Rollout
	key     string // the firmware file's cache key
}

// Version is what a phone running the image reports, read from its name.
func (f *Firmware) Version() string { return phone.ImageVersion(f.Image) }

// keepKey renders the firmware file that points at no image.
const keepKey = "\x00keep"

var groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// computeFirmware indexes every image by the phones it goes to, after
// prepare checked them.
func (c *Catalog) computeFirmware() {
	c.modelFW = map[string]*Firmware{}
	c.phoneFW = map[phone.MAC]*Firmware{}
	c.fwByKey = map[string]*Firmware{}
	for name, m := range c.cfg.Models {
		if m.Firmware == "" || isDECT(name) {
			continue
		}
		f := &Firmware{Image: m.Firmware, UXM: m.FirmwareUXM, Model: name, Scope: "models." + name, key: name,
			Rollout: newRollout("models."+name, m.Firmware, m.Rollout)}
		c.modelFW[name], c.fwByKey[f.key] = f, f
	}
	listed := map[phone.MAC]string{} // the group whose phones list a MAC
	for name, g := range c.cfg.Groups {
		for _, mac := range g.Phones {
			listed[mac] = name
		}
	}
	groups := map[string]*Firmware{}
	for i := range c.cfg.Phones {
		ph := &c.cfg.Phones[i]
		name := ph.Group
		if name == "" {
			name = listed[ph.MAC]
		}
		switch g := c.cfg.Groups[name]; {
		case ph.Firmware != "":
			f := &Firmware{Image: ph.Firmware, UXM: ph.FirmwareUXM, Model: imageModel(ph.Model, ph.Firmware), Scope: indexKey("phones", i)}
			f.key = f.Scope
			c.phoneFW[ph.MAC], c.fwByKey[f.key] = f, f
		case g.Firmware != "":
			f := groups[name]
			if f == nil {
				f = &Firmware{Image: g.Firmware, UXM: g.FirmwareUXM, Scope: "groups." + name,
					Rollout: newRollout("groups."+name, g.Firmware, g.Rollout)}
				f.key = f.Scope
				groups[name], c.fwByKey[f.key] = f, f
			}
			own := *f // the group's image, for this member's type
			own.Model = imageModel(ph.Model, g.Firmware)
			c.phoneFW[ph.MAC] = &own
		}
	}
}

func newRollout(scope, image string, r config.Rollout) *rollout.Rollout {
	if len(r.Canaries) == 0 {
		return nil
	}
	t := r.CanaryTimeout.Duration
	if t == 0 {
		t = rollout.DefaultCanaryTimeout
	}
	return &rollout.Rollout{Scope: scope, Image: image, Version: phone.ImageVersion(image), Canaries: slices.Clone(r.Canaries), Timeout: t}
}

// imageModel is the phone type an image goes to: the phone's, else the
// one its name says.
func imageModel(model, image string) string {
	if model != "" {
		return model
	}
	return phone.ImageModel(image)
}

// FirmwareFor is the image the phone mac of type model is pointed at:
// its own, its group's or its model's. ok is false when none is.
func (c *Catalog) FirmwareFor(mac phone.MAC, model string) (f *Firmware, ok bool) {
	if f := c.phoneFW[mac]; f != nil && (model == "" || strings.EqualFold(f.Model, model)) {
		return f, true
	}
	f = c.modelFW[model]
	return f, f != nil
}

// Rollouts are every staged rollout of the configuration, by scope.
func (c *Catalog) Rollouts() []rollout.Rollout {
	var out []rollout.Rollout
	for _, f := range c.fwByKey {
		if f.Rollout != nil {
			out = append(out, *f.Rollout)
		}
	}
	slices.SortFunc(out, func(a, b rollout.Rollout) int { return strings.Compare(a.Scope, b.Scope) })
	return out
}

// FirmwareDoc is the firmware file pointing at f's image.
func (c *Catalog) FirmwareDoc(base string, f *Firmware) Doc {
	return c.lookup(base, docKey{kind: KindFirmware, model: f.key})
}

// KeepFirmware is the firmware file pointing at no image: the phone keeps
// the firmware it runs (a rollout waiting for its canaries, the loop
// guard). reason is written into it as an XML comment, which phones
// ignore and `snomprov simulate` reports; it is rendered per request.
func (c *Catalog) KeepFirmware(reason string) Doc {
	w := &writer{b: make([]byte, 0, 128+len(reason))}
	w.raw(xmlHeader)
	w.keepFirmware(reason)
	return newDoc(w.b)
}

// keepFirmware writes a <firmware-settings> that names no image, with why.
func (w *writer) keepFirmware(reason string) {
	w.raw("<firmware-settings>\n")
	if reason != "" {
		// "--" may not stand inside a comment.
		w.raw("  <!-- " + strings.ReplaceAll(reason, "--", "- -") + " -->\n")
	}
	w.raw("</firmware-settings>\n")
}

// ownFirmwareStatus is the firmware pointer a phone's own file carries
// when its image (its own or its group's) comes from no general file: its
// model has no firmware of its own.
func (c *Catalog) ownFirmwareStatus(p *config.Phone, base string, s config.Settings) config.Settings {
	f := c.phoneFW[p.MAC]
	if f == nil || c.HasFirmware(f.Model) {
		return s
	}
	if _, set := merge(c.cfg.Settings, s)["firmware_status"]; set {
		return s
	}
	s = merge(nil, s)
	s["firmware_status"] = config.Setting{Value: base + "/" + f.Model + "-firmware.htm"}
	if _, set := merge(c.cfg.Settings, s)["update_policy"]; !set {
		s["update_policy"] = config.Setting{Value: "auto_update"}
	}
	return s
}

// firmwares checks the firmware of groups and phones and every rollout's
// canaries. A phone is in one group; its group must exist; an image must
// be for the phone's type; canaries are phones the image goes to.
func (p *preparer) firmwares() {
	cfg := p.c.cfg
	dir := cfg.HTTP.FirmwareDir
	image := func(key, name string) {
		if msg := config.FirmwareImageProblem(dir, name); msg != "" {
			p.fail(key, "%s", msg)
		}
	}
	member := map[phone.MAC]string{}
	for _, name := range sortedNames(cfg.Groups) {
		g, at := cfg.Groups[name], "groups."+name
		if !groupName.MatchString(name) {
			p.fail(at, "%q is not a group name: use letters, digits, - and _", name)
		}
		for i, mac := range g.Phones {
			k := field.Prefix(at, indexKey("phones", i))
			switch other, dup := member[mac]; {
			case !p.c.HasPhone(mac):
				p.fail(k, "%s is not in [[phones]] or a phones CSV; a group's phones are configured phones", mac)
			case dup && other == name:
				p.fail(k, "%s is listed twice", mac)
			case dup:
				p.fail(k, "%s is also in groups.%s; a phone is in one group", mac, other)
			default:
				member[mac] = name
			}
		}
		image(field.Prefix(at, "firmware"), g.Firmware)
		image(field.Prefix(at, "firmware_uxm"), g.FirmwareUXM)
		if g.Firmware == "" && g.FirmwareUXM != "" {
			p.fail(field.Prefix(at, "firmware_uxm"), "firmware_uxm goes with firmware: the module is flashed after the phone's image")
		}
	}
	for i := range cfg.Phones {
		ph, at := &cfg.Phones[i], indexKey("phones", i)
		if ph.Group != "" {
			if _, ok := cfg.Groups[ph.Group]; !ok {
				p.fail(field.Prefix(at, "group"), "there is no [groups.%s]%s", ph.Group, knownGroups(cfg.Groups))
			} else if other, listed := member[ph.MAC]; listed && other != ph.Group {
				p.fail(field.Prefix(at, "group"), "the phone is in groups.%s (its phones list); a phone is in one group", other)
			} else {
				member[ph.MAC] = ph.Group
			}
		}
		image(field.Prefix(at, "firmware"), ph.Firmware)
		image(field.Prefix(at, "firmware_uxm"), ph.FirmwareUXM)
		switch {
		case ph.Firmware == "" && ph.FirmwareUXM != "":
			p.fail(field.Prefix(at, "firmware_uxm"), "firmware_uxm goes with firmware: the module is flashed after the phone's image")
		case ph.Firmware != "":
			p.fits(at, at, ph, ph.Firmware, ph.FirmwareUXM)
		default:
			if name := member[ph.MAC]; name != "" && cfg.Groups[name].Firmware != "" {
				g := cfg.Groups[name]
				p.fits("groups."+name, at, ph, g.Firmware, g.FirmwareUXM)
			}
		}
	}
	for _, name := range sortedNames(cfg.Models) {
		m := cfg.Models[name]
		p.canaries("models."+name, m.Firmware, m.Rollout, func(mac phone.MAC) string {
			ph := p.c.phones[mac]
			switch {
			case ph == nil:
				return ""
			case ph.Model != "" && ph.Model != name:
				return "it is a " + ph.Model
			case ph.Firmware != "":
				return "it has its own firmware, which wins over the model's"
			case cfg.Groups[member[mac]].Firmware != "":
				return "it gets groups." + member[mac] + "'s firmware, which wins over the model's"
			}
			return ""
		})
	}
	for _, name := range sortedNames(cfg.Groups) {
		g := cfg.Groups[name]
		p.canaries("groups."+name, g.Firmware, g.Rollout, func(mac phone.MAC) string {
			switch ph := p.c.phones[mac]; {
			case member[mac] != name:
				return "it is not in the group"
			case ph.Firmware != "":
				return "it has its own firmware, which wins over the group's"
			}
			return ""
		})
	}
}

func knownGroups(groups map[string]config.Group) string {
	if len(groups) == 0 {
		return "; define it, or remove group"
	}
	return "; the groups are " + strings.Join(sortedNames(groups), ", ")
}

// fits checks an image (of the scope at scopeKey) for the phone at phoneKey.
func (p *preparer) fits(scopeKey, phoneKey string, ph *config.Phone, img, uxm string) {
	model := imageModel(ph.Model, img)
	if model == "" {
		p.fail(field.Prefix(phoneKey, "model"), "%s's name names no phone type, so the phone needs its model to be told which firmware file hands it out; set model", phone.ImageName(img))
		return
	}
	row, known := phone.Lookup(model)
	if !known {
		return
	}
	key := scopeKey
	if scopeKey != phoneKey {
		// A group's image checked for one member: say which.
		before := len(p.errs)
		p.firmware(scopeKey, model, row, config.Model{Firmware: img, FirmwareUXM: uxm})
		for _, e := range p.errs[before:] {
			e.Msg += " (for member " + ph.MAC.String() + ", " + phoneKey + ")"
		}
		return
	}
	p.firmware(key, model, row, config.Model{Firmware: img, FirmwareUXM: uxm})
}

// canaries checks a model's or group's rollout.
func (p *preparer) canaries(at, img string, r config.Rollout, outside func(phone.MAC) string) {
	if r.CanaryTimeout.Duration < 0 {
		p.fail(field.Prefix(at, "canary_timeout"), `must be positive, like "1h"`)
	}
	if len(r.Canaries) == 0 {
		if r.CanaryTimeout.Duration != 0 {
			p.warn(field.Prefix(at, "canary_timeout"), "canary_timeout without canaries does nothing: the image goes to every phone at once")
		}
		return
	}
	if img == "" {
		p.fail(field.Prefix(at, "canaries"), "canaries try a new image first, but %s has no firmware", at)
		return
	}
	if phone.ImageVersion(img) == "" {
		p.fail(field.Prefix(at, "firmware"), "a rollout with canaries needs the image's version in its name (like snomD785-10.1.73.4-SIP-r.bin) to tell when a canary runs it; %s has none", phone.ImageName(img))
	}
	seen := map[phone.MAC]bool{}
	for i, mac := range r.Canaries {
		k := field.Prefix(at, indexKey("canaries", i))
		if seen[mac] {
			p.fail(k, "%s is listed twice", mac)
			continue
		}
		seen[mac] = true
		if why := outside(mac); why != "" {
			p.fail(k, "%s cannot be a canary of %s: %s", mac, at, why)
		}
	}
}
