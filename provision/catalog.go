// Package provision turns a Config into the exact bytes each phone receives:
// the general file per phone type, the per-phone file and the firmware file,
// in Snom's XML syntax (snom-provisioning.md §4).
//
// Everything is rendered when the config is loaded (or, for a base URL seen
// for the first time, on the first request with it) and kept in memory, so
// serving a file is a map lookup. A Catalog is immutable apart from that
// cache; a reload builds a new one.
//
// Phone types that have no [models.X] section still get a general file: the
// global [settings], setting_server and the phonebook, with no firmware
// pointer. Every phone type is therefore served without listing it.
package provision

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/phone"
)

// Kind is one of the files a phone can fetch.
type Kind uint8

// File kinds.
const (
	KindGeneral  Kind = iota + 1 // snom<type>.htm: global + model settings
	KindPhone                    // snom<type>-<MAC>.htm: the phone's own settings
	KindCombined                 // the one file of a {mac} URL: general and phone in one
	KindFirmware                 // snom<type>-firmware.htm: <firmware-settings>
)

// Doc is one rendered file.
type Doc struct {
	Body []byte
	ETag string // strong, quoted
	// Ready-made header values, so serving a file allocates nothing for
	// them (net/http only reads header slices).
	ETagHeader   []string
	LengthHeader []string
}

// File is one file a phone receives, for the CLI and status page.
type File struct {
	Path string
	Body []byte
}

// Unknown-phone policies (http.unknown_phones): which files a phone that
// is not in [[phones]] gets.
const (
	UnknownGeneric = "generic" // the general file only
	UnknownDeny    = "deny"    // nothing
	UnknownAllow   = "allow"   // the general file and an empty per-phone file
)

// PrepareError is New's error when the settings' prepare step finds
// problems: the errors, keyed by full config key paths (field.List finds
// them), and the warnings found on the way.
type PrepareError struct {
	Errors   field.Errors
	Warnings []*field.Error
}

func (e *PrepareError) Error() string { return e.Errors.Error() }

// Unwrap lets field.List and errors.As reach the errors.
func (e *PrepareError) Unwrap() error { return e.Errors }

// ErrNoModel means the phone type is needed but neither given nor configured.
var ErrNoModel = errors.New("phone type unknown")

// maxBases bounds the per-base-URL caches. A phone reaches the appliance by
// a handful of addresses at most; more distinct Host headers only cost a
// render on each miss.
const maxBases = 8

// Catalog holds every file of one configuration.
type Catalog struct {
	cfg         *config.Config
	url         URLTemplate
	defaultBase string // http.url's base, else http://advertise[:port]; may be empty
	defaultPerm string
	loaded      time.Time
	phones      map[phone.MAC]*config.Phone
	targets     map[string]fwTarget     // per type; "" for types without [models.X]
	modelFW     map[string]*Firmware    // [models.X] firmware
	phoneFW     map[phone.MAC]*Firmware // a phone's own or its group's firmware
	fwByKey     map[string]*Firmware    // by firmware file cache key
	certs       map[string][]string     // certificates file -> base64 DER of each certificate

	// Warnings are what New could not check or found doubtful (an unknown
	// phone type, a phone whose settings fit only some of the models it
	// may be): keyed like the errors, by full config key path.
	Warnings []*field.Error

	mu    sync.RWMutex
	bases map[string]*baseCache
	order []string // insertion order, for eviction
}

type docKey struct {
	kind  Kind
	model string // "" for a type without [models.X] (same bytes for all of them)
	mac   phone.MAC
	part  part // a document of a chained set (containers.go)
}

type baseCache struct {
	mu   sync.RWMutex
	docs map[docKey]Doc
}

// New validates what rendering needs and pre-renders every file for the
// default base URL.
func New(cfg *config.Config) (*Catalog, error) {
	if cfg == nil {
		return nil, errors.New("no config")
	}
	tpl, err := ParseURLTemplate(cfg.HTTP.URL)
	if err != nil {
		return nil, field.Errorf("http.url", "%v", err)
	}
	c := &Catalog{
		cfg:         cfg,
		url:         tpl,
		defaultPerm: cfg.Provision.DefaultPerm,
		loaded:      time.Now().UTC().Truncate(time.Second),
		phones:      make(map[phone.MAC]*config.Phone, len(cfg.Phones)),
		bases:       make(map[string]*baseCache),
	}
	if c.defaultPerm == "" {
		c.defaultPerm = "R"
	}
	// Setting names, model names and MACs were checked when the config
	// was decoded (config.Parse); the catalog only indexes them.
	for i := range cfg.Phones {
		c.phones[cfg.Phones[i].MAC] = &cfg.Phones[i]
	}
	if errs := c.prepare(); len(errs) > 0 {
		return nil, &PrepareError{Errors: errs, Warnings: c.Warnings}
	}
	c.computeTargets()
	c.computeFirmware()
	switch {
	case !tpl.IsZero():
		c.defaultBase = tpl.Base
	case cfg.Server.Advertise.IsValid():
		c.defaultBase = BaseFor("http", hostPort(cfg.Server.Advertise, cfg.HTTP.Listen), "")
	}
	if c.defaultBase != "" {
		c.Warm(c.defaultBase)
	}
	return c, nil
}

func hostPort(addr netip.Addr, listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "80" || port == "0" {
		return addr.String()
	}
	return net.JoinHostPort(addr.String(), port)
}

// BaseFor builds a base URL from a request: scheme, Host header and, when
// HTTP Basic auth is on, the credentials, so the URLs written into files
// keep working for a phone that needs them.
func BaseFor(scheme, host, userinfo string) string {
	if userinfo != "" {
		return scheme + "://" + userinfo + "@" + host
	}
	return scheme + "://" + host
}

// URL is the parsed http.url (zero when unset).
func (c *Catalog) URL() URLTemplate { return c.url }

// DefaultBase is the base URL used when the request's does not matter
// (http.url's, else the advertised address); empty if unknown.
func (c *Catalog) DefaultBase() string { return c.defaultBase }

// FixedBase is http.url's base when set: then every file names it,
// whatever Host the phone used.
func (c *Catalog) FixedBase() string {
	if c.url.IsZero() {
		return ""
	}
	return c.url.Base
}

// Loaded is when the catalog was built; it is the Last-Modified of every file.
func (c *Catalog) Loaded() time.Time { return c.loaded }

// Config returns the config the catalog was built from.
func (c *Catalog) Config() *config.Config { return c.cfg }

// HasPhone reports whether mac is in [[phones]].
func (c *Catalog) HasPhone(mac phone.MAC) bool { _, ok := c.phones[mac]; return ok }

// PhoneModel is the configured model of a phone, "" if none.
func (c *Catalog) PhoneModel(mac phone.MAC) string {
	if p := c.phones[mac]; p != nil {
		return p.Model
	}
	return ""
}

// HasFirmware reports whether the model has a firmware image configured
// that a firmware file points at. A DECT base's firmware is part of its
// settings file instead.
func (c *Catalog) HasFirmware(model string) bool {
	m, ok := c.cfg.Models[model]
	return ok && m.Firmware != "" && !isDECT(model)
}

func isDECT(model string) bool {
	row, ok := phone.Lookup(model)
	return ok && row.Family == phone.FamilyDECT
}

// FirmwareTarget is the firmware version the settings of a phone type
// point it at, read from the image name (snomD785-10.1.215.13-SIP-r.bin →
// 10.1.215.13). managed is false when the settings point at no firmware
// (no image for the type and no firmware_status of the config's own);
// version is empty when it cannot be told.
func (c *Catalog) FirmwareTarget(model string) (version string, managed bool) {
	t, ok := c.targets[model]
	if !ok {
		t = c.targets[""]
	}
	return t.version, t.managed
}

// FirmwareTargetFor is FirmwareTarget for one phone: its own or its
// group's image wins over its model's.
func (c *Catalog) FirmwareTargetFor(mac phone.MAC, model string) (version string, managed bool) {
	if f := c.phoneFW[mac]; f != nil && (model == "" || strings.EqualFold(f.Model, model)) {
		return f.Version(), true
	}
	return c.FirmwareTarget(model)
}

type fwTarget struct {
	version string
	managed bool
}

func (c *Catalog) computeTargets() {
	c.targets = make(map[string]fwTarget, len(c.cfg.Models)+1)
	target := func(m config.Model) fwTarget {
		if _, own := merge(c.cfg.Settings, m.Settings)["firmware_status"]; own {
			return fwTarget{managed: true}
		}
		if !m.DECT.IsZero() {
			return fwTarget{version: m.DECT.Version, managed: true}
		}
		if m.Firmware == "" {
			return fwTarget{}
		}
		return fwTarget{version: phone.ImageVersion(m.Firmware), managed: true}
	}
	c.targets[""] = target(config.Model{})
	for name, m := range c.cfg.Models {
		c.targets[name] = target(m)
	}
}

// Warm renders every file for base now, so later requests only look up.
func (c *Catalog) Warm(base string) {
	bc := c.cache(base)
	c.get(bc, base, docKey{kind: KindGeneral})
	for name := range c.cfg.Models {
		c.get(bc, base, docKey{kind: KindGeneral, model: name})
	}
	for key := range c.fwByKey {
		c.get(bc, base, docKey{kind: KindFirmware, model: key})
	}
	for mac := range c.phones {
		c.get(bc, base, docKey{kind: KindPhone, mac: mac})
	}
	c.get(bc, base, docKey{kind: KindPhone})
}

// General returns the general file of a phone type.
func (c *Catalog) General(base, model string) Doc {
	return c.lookup(base, docKey{kind: KindGeneral, model: c.modelKey(model)})
}

// Phone returns the per-phone file; ok is false when mac is not configured.
func (c *Catalog) Phone(base string, mac phone.MAC) (Doc, bool) {
	if !c.HasPhone(mac) {
		return Doc{}, false
	}
	return c.lookup(base, docKey{kind: KindPhone, mac: mac}), true
}

// EmptyPhone is the per-phone file of an unknown phone under
// unknown_phones = "allow": valid, with no phone-specific settings.
func (c *Catalog) EmptyPhone(base string) Doc {
	return c.lookup(base, docKey{kind: KindPhone})
}

// Combined returns the single file of a {mac} URL: the general file of
// model with the phone's own settings and keys merged in. For a phone
// not in the config it is the general file.
func (c *Catalog) Combined(base, model string, mac phone.MAC) Doc {
	if !c.HasPhone(mac) {
		return c.General(base, model)
	}
	return c.lookup(base, docKey{kind: KindCombined, model: c.modelKey(model), mac: mac})
}

// modelKey folds every type without [models.X] into one cache entry,
// except the catalogue's devices that read only some containers (DECT
// bases, conference phones, ...): their file leaves out what they do not
// read, so it is their own.
func (c *Catalog) modelKey(model string) string {
	if _, ok := c.cfg.Models[model]; ok {
		return model
	}
	if ownFile[model] {
		return model
	}
	return ""
}

// ownFile holds the catalogue's devices that read only some containers,
// computed once: modelKey is on every request's path.
var ownFile = func() map[string]bool {
	out := map[string]bool{}
	for _, row := range phone.Models() {
		for _, ct := range phone.Containers {
			if !row.Reads(ct) && row.Family != phone.FamilyModule {
				out[row.Type] = true
			}
		}
	}
	return out
}()

func (c *Catalog) lookup(base string, k docKey) Doc {
	return c.get(c.cache(base), base, k)
}

func (c *Catalog) cache(base string) *baseCache {
	c.mu.RLock()
	bc := c.bases[base]
	c.mu.RUnlock()
	if bc != nil {
		return bc
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if bc = c.bases[base]; bc != nil {
		return bc
	}
	if len(c.order) >= maxBases {
		// Evict the oldest base that is not the default one.
		for i, b := range c.order {
			if b != c.defaultBase {
				delete(c.bases, b)
				c.order = append(c.order[:i], c.order[i+1:]...)
				break
			}
		}
	}
	bc = &baseCache{docs: make(map[docKey]Doc)}
	c.bases[base] = bc
	c.order = append(c.order, base)
	return bc
}

func (c *Catalog) get(bc *baseCache, base string, k docKey) Doc {
	bc.mu.RLock()
	d, ok := bc.docs[k]
	bc.mu.RUnlock()
	if ok {
		return d
	}
	// Exact-size copy: the render buffer's spare capacity would otherwise
	// stay live for every cached file.
	d = newDoc(bytes.Clone(c.render(k, base, true)))
	bc.mu.Lock()
	bc.docs[k] = d
	bc.mu.Unlock()
	return d
}

// Render renders one file without caching, masking secrets unless
// showSecrets. mac is ignored for general and firmware files.
func (c *Catalog) Render(kind Kind, base, model string, mac phone.MAC, showSecrets bool) []byte {
	if kind == KindFirmware {
		f, ok := c.FirmwareFor(mac, model)
		if !ok {
			model = keepKey
		} else {
			model = f.key
		}
	} else {
		model = c.modelKey(model)
	}
	return c.render(docKey{kind: kind, model: model, mac: mac}, base, showSecrets)
}

func (c *Catalog) render(k docKey, base string, showSecrets bool) []byte {
	if !showSecrets {
		base = redact.URL(base)
	}
	w := &writer{b: make([]byte, 0, 1024)}
	w.raw(xmlHeader)
	switch k.kind {
	case KindFirmware:
		m := c.fwByKey[k.model]
		if m == nil { // keepKey: no image, the phone keeps what it runs
			w.keepFirmware("")
			return w.b
		}
		w.raw("<firmware-settings>\n")
		fw, uxm := firmwareURL(base, m.Image), firmwareURL(base, m.UXM)
		if !showSecrets {
			fw, uxm = redact.URL(fw), redact.URL(uxm)
		}
		w.raw("  <firmware perm=\"\">")
		w.text(fw)
		w.raw("</firmware>\n")
		if m.UXM != "" {
			w.raw("  <firmware_uxm perm=\"\">")
			w.text(uxm)
			w.raw("</firmware_uxm>\n")
		}
		w.raw("</firmware-settings>\n")
		return w.b
	}
	ct := c.content(k, base)
	switch {
	case k.part == partTop && ct.chains():
		c.settingFiles(w, docKey{kind: k.kind, model: k.model, mac: k.mac}, &ct, base, showSecrets)
	case k.part == partGUI:
		w.languages("gui-languages", ct.gui, base, false, showSecrets)
	case k.part == partWeb:
		w.languages("web-languages", ct.web, base, true, showSecrets)
	default:
		c.settingsDoc(w, &ct, base, showSecrets)
	}
	return w.b
}

// generalSettings is [settings] overlaid with [models.X.settings], plus the
// pointers the appliance adds unless the config sets them itself.
func (c *Catalog) generalSettings(base, model string) config.Settings {
	s := merge(c.cfg.Settings, c.cfg.Models[model].Settings)
	if c.cfg.Provision.PinSettingServer == config.PinAll {
		c.pin(s, base)
	}
	if c.HasFirmware(model) {
		if _, set := s["firmware_status"]; !set {
			s["firmware_status"] = config.Setting{Value: base + "/" + model + "-firmware.htm"}
		}
	}
	// A phone fetches the firmware file only when its update policy lets
	// it (Snom's D-series default is settings_only), so a firmware pointer,
	// the appliance's or the config's own, comes with auto_update unless
	// the config chooses a policy.
	if _, fw := s["firmware_status"]; fw {
		if _, set := s["update_policy"]; !set {
			s["update_policy"] = config.Setting{Value: "auto_update"}
		}
	}
	return s
}

// phoneSettings is a configured phone's own settings, with setting_server
// pinned under pin_setting_server = "configured". Unconfigured phones get
// no pin unless the config says "all": on a LAN shared with another
// provisioning system, they may be its phones.
func (c *Catalog) phoneSettings(p *config.Phone, base string) config.Settings {
	if p == nil {
		return nil
	}
	own := c.ownFirmwareStatus(p, base, c.lineSettings(p))
	if c.cfg.Provision.PinSettingServer != config.PinConfigured {
		return own
	}
	if _, set := merge(c.cfg.Settings, own)["setting_server"]; set {
		return own
	}
	s := merge(nil, own)
	c.pin(s, base)
	return s
}

// pin sets setting_server to the appliance's URL unless s sets it.
func (c *Catalog) pin(s config.Settings, base string) {
	if _, set := s["setting_server"]; !set {
		s["setting_server"] = config.Setting{Value: c.settingURL(base)}
	}
}

// settingURL is what setting_server is pinned to: http.url verbatim (the
// phone fills in its placeholders), else the base the phone used.
func (c *Catalog) settingURL(base string) string {
	if !c.url.IsZero() {
		if strings.HasPrefix(base, c.url.Base) {
			return c.url.Raw
		}
		return redact.URL(c.url.Raw) // masked preview
	}
	return base + "/"
}

// merge copies a and overlays b. Indexed settings present in both are merged
// per idx; otherwise b's value replaces a's.
func merge(a, b config.Settings) config.Settings {
	out := make(config.Settings, len(a)+len(b)+3)
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if old, ok := out[k]; ok && len(old.Indexed) > 0 && len(v.Indexed) > 0 {
			idx := make(map[int]config.IndexedValue, len(old.Indexed)+len(v.Indexed))
			for i, iv := range old.Indexed {
				if iv.Perm == "" {
					iv.Perm = old.Perm
				}
				idx[i] = iv
			}
			for i, iv := range v.Indexed {
				if iv.Perm == "" {
					iv.Perm = v.Perm
				}
				idx[i] = iv
			}
			out[k] = config.Setting{Indexed: idx}
			continue
		}
		out[k] = v
	}
	return out
}

// firmwareURL: an absolute URL is used verbatim, a file name lives under
// <base>/firmware/.
func firmwareURL(base, name string) string {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		return name
	}
	return base + "/firmware/" + (&url.URL{Path: strings.TrimPrefix(name, "/")}).EscapedPath()
}

// Files returns exactly the files the phone with this MAC receives, in the
// order it fetches them, for `snomprov render` and the status page. model
// may be empty when [[phones]] names it. policy is http.unknown_phones.
func (c *Catalog) Files(mac phone.MAC, model, base string, showSecrets bool) ([]File, error) {
	if model == "" {
		model = c.PhoneModel(mac)
	}
	if model == "" {
		return nil, fmt.Errorf("%w for %s: give the model (e.g. --model snomD785) or set model in its [[phones]] entry", ErrNoModel, mac)
	}
	if !phone.ValidModel(model) {
		return nil, fmt.Errorf("%q is not a Snom phone type; use the vendor identifier, e.g. snomD785", model)
	}
	if base == "" {
		base = c.defaultBase
	}
	if base == "" {
		return nil, errors.New("no base URL: set server.advertise or http.url")
	}
	if !c.url.IsZero() {
		base = c.url.Base
	} else if u := c.cfg.HTTP.Username; u != "" && !strings.Contains(base, "@") {
		// What httpd writes for a phone that used Basic auth.
		if scheme, host, ok := strings.Cut(base, "://"); ok {
			base = BaseFor(scheme, host, url.UserPassword(u, c.cfg.HTTP.Password).String())
		}
	}
	known := c.HasPhone(mac)
	policy := c.cfg.HTTP.UnknownPhones
	if !known && policy == UnknownDeny {
		return nil, nil
	}
	mk := c.modelKey(model)
	vars := Vars{MAC: mac, HasMAC: true, Model: model}
	var files []File
	// add appends the file k the phone fetches at path, then the documents
	// its <setting-files> list names, in that order.
	add := func(path string, k docKey) {
		files = append(files, File{Path: path, Body: c.render(k, base, showSecrets)})
		for _, p := range c.parts(k)[1:] {
			k.part = p
			files = append(files, File{Path: PartPrefix + partName(k, p), Body: c.render(k, base, showSecrets)})
		}
	}
	switch {
	case c.url.HasMAC:
		add(Expand(c.url.Path, vars), docKey{kind: KindCombined, model: mk, mac: mac})
	default:
		gen, per := "/"+model+".htm", "/"+model+"-"+mac.String()+".htm"
		if c.url.Path != "" {
			gen, per = Expand(c.url.Path, vars), Expand(c.url.MACPath, vars)
		} else if !c.url.IsZero() {
			gen, per = c.url.Dir+model+".htm", c.url.Dir+model+"-"+mac.String()+".htm"
		}
		add(gen, docKey{kind: KindGeneral, model: mk})
		if known || policy == UnknownAllow {
			add(per, docKey{kind: KindPhone, mac: mac})
		}
	}
	if f, ok := c.FirmwareFor(mac, model); ok {
		files = append(files, File{Path: "/" + f.Model + "-firmware.htm", Body: c.Render(KindFirmware, base, model, mac, showSecrets)})
	}
	return files, nil
}
