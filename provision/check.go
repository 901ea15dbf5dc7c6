package provision

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

// prepare is the settings' prepare step: it checks the containers of every
// scope and everything the model catalogue knows (function-key ranges,
// identities, containers a device reads, firmware kinds), and reads the
// certificates. Errors and warnings are keyed by full config key paths
// (phones[2].fkeys.140, models.snomC520.fkeys.0), for the compile step to
// place in the file.
func (c *Catalog) prepare() field.Errors {
	p := &preparer{c: c}
	p.scope("", c.cfg.Containers, nil)
	for _, name := range sortedNames(c.cfg.Models) {
		m := c.cfg.Models[name]
		at := "models." + name
		p.scope(at, m.Containers, m.Phonebook)
		row, known := phone.Lookup(name)
		if !known {
			p.warn(at, "%s is not in the model catalogue (snomprov models); its function keys, identities and containers could not be checked", name)
			p.moduleNames(at, m.Modules)
			continue
		}
		p.modules(at, row, m.Modules)
		p.firmware(at, name, row, m)
		p.device(at, row, m.Modules, m.Settings, m.FKeys, m.Containers, m.Phonebook)
	}
	p.global()
	p.lineDefaults()
	p.reachable = p.reach()
	for i := range c.cfg.Phones {
		ph := &c.cfg.Phones[i]
		at := "phones[" + strconv.Itoa(i) + "]"
		p.scope(at, ph.Containers, ph.Phonebook)
		p.phone(at, ph)
	}
	p.firmwares()
	c.Warnings = p.warns
	return p.errs
}

type preparer struct {
	c         *Catalog
	errs      field.Errors
	warns     []*field.Error
	reachable []phone.Model // what a phone without a model may be
}

func (p *preparer) fail(key, format string, args ...any) { p.errs.Add(key, format, args...) }

func (p *preparer) warn(key, format string, args ...any) {
	p.warns = append(p.warns, field.Errorf(key, format, args...))
}

// scope checks one scope's containers and phone book on their own.
func (p *preparer) scope(at string, s config.Containers, book []config.PhonebookEntry) {
	key := func(k string) string { return field.Prefix(at, k) }
	for i, f := range s.SettingFiles {
		p.servedFile(key(indexKey("setting_files", i)), f, "")
	}
	for i, r := range s.Dialplan {
		k := key(indexKey("dialplan", i))
		if r.Match == "" {
			p.fail(field.Prefix(k, "match"), `a dial plan rule needs a match pattern, like match = "9,0"`)
		}
		if r.User != "" && !strings.EqualFold(r.User, "phone") && !strings.EqualFold(r.User, "ip") {
			p.fail(field.Prefix(k, "user"), `%q is not a dial plan User; use "phone" or "ip"`, r.User)
		}
	}
	if s.ReplacementPlan != "" {
		if err := checkFragment(s.ReplacementPlan); err != nil {
			p.fail(key("replacement_plan"), "not well-formed XML: %v", err)
		}
	}
	if s.XML != "" {
		if err := checkFragment(s.XML); err != nil {
			p.fail(key("xml"), "not well-formed XML: %v", err)
		}
	}
	for i, f := range s.Certificates {
		p.certificate(key(indexKey("certificates", i)), f)
	}
	for i, u := range s.Uploads {
		k := key(indexKey("uploads", i))
		if u.Type == "" {
			p.fail(field.Prefix(k, "type"), `an upload needs a type, like type = "gui" (the <uploads> tag page lists them)`)
		}
		p.servedFile(field.Prefix(k, "file"), u.File, "")
	}
	for _, l := range []struct {
		key   string
		langs []config.Language
		web   bool
	}{{"gui_languages", s.GUILanguages, false}, {"web_languages", s.WebLanguages, true}} {
		for i, lang := range l.langs {
			k := key(indexKey(l.key, i))
			prefix := map[bool]string{false: "gui_lang_", true: "web_lang_"}[l.web]
			if lang.File == "" && languageFile(lang, l.web) == "" {
				p.fail(k, "%q is not a language snomprov knows the file of (%s); write { name = %q, file = \"%sXX.xml\" }", lang.Name, knownLanguages(), lang.Name, prefix)
				continue
			}
			if lang.File != "" && !isURL(lang.File) && (!strings.HasPrefix(path.Base(lang.File), prefix) || !strings.HasSuffix(lang.File, ".xml")) {
				p.fail(field.Prefix(k, "file"), "a %s language file is named %s<name>.xml (the <gui-languages> tag page), not %q", strings.TrimSuffix(l.key, "_languages"), prefix, lang.File)
				continue
			}
			p.servedFile(k, languageFile(lang, l.web), "the language files come with each firmware release; ")
		}
	}
	if s.PhonebookMode != "" && s.PhonebookMode != bookReplace && s.PhonebookMode != bookAdd {
		p.fail(key("phonebook_mode"), `%q is not allowed; use "replace" (the book replaces the phone's, wiping the user's own contacts) or "add"`, s.PhonebookMode)
	}
	if at == "" {
		return // the global [[phonebook]] is checked by config
	}
	for i, e := range book {
		k := key(indexKey("phonebook", i))
		switch {
		case e.Name == "" && e.FirstName == "" && e.LastName == "" && e.Number == "":
			p.fail(k, "a phonebook entry needs a name and a number")
		case e.Number == "":
			p.fail(field.Prefix(k, "number"), "a phonebook entry needs a number")
		case e.Name == "" && e.FirstName == "" && e.LastName == "":
			p.fail(field.Prefix(k, "name"), "a phonebook entry needs a name (or first_name, last_name)")
		}
		if e.Type != "" && !slices.Contains(config.PhonebookTypes, e.Type) {
			p.fail(field.Prefix(k, "type"), "%q is not allowed; use one of %s", e.Type, strings.Join(config.PhonebookTypes, ", "))
		}
	}
}

// servedFile checks a file snomprov serves from files_dir (or an absolute URL).
func (p *preparer) servedFile(key, name, hint string) {
	switch {
	case name == "":
		p.fail(key, "a file name in http.files_dir, or an absolute http:// URL, is needed")
	case isURL(name):
	case p.c.cfg.HTTP.FilesDir == "":
		p.fail(key, "%s is served from http.files_dir, which is not set; %sset files_dir and put the file there", name, hint)
	case filepath.IsAbs(name) || strings.HasPrefix(filepath.Clean(name), ".."):
		p.fail(key, "%q must be a file name inside http.files_dir (%s)", name, p.c.cfg.HTTP.FilesDir)
	default:
		if st, err := os.Stat(filepath.Join(p.c.cfg.HTTP.FilesDir, name)); err != nil || !st.Mode().IsRegular() {
			p.fail(key, "%s not found in http.files_dir %s; %scopy it there", name, p.c.cfg.HTTP.FilesDir, hint)
		}
	}
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// certificate reads a PEM file, relative to the config file, into the
// base64 DER the <certificates> tag carries.
func (p *preparer) certificate(key, name string) {
	file := name
	if !filepath.IsAbs(file) && p.c.cfg.Source != "" {
		file = filepath.Join(filepath.Dir(p.c.cfg.Source), file)
	}
	if _, done := p.c.certs[name]; done {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		p.fail(key, "cannot read %s: %v; give a PEM file beside the config", file, errors.Unwrap(err))
		return
	}
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue // a key in the same file is not sent to phones
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			p.fail(key, "%s: a CERTIFICATE block does not parse: %v", file, err)
			return
		}
		out = append(out, base64.StdEncoding.EncodeToString(b.Bytes))
	}
	if len(out) == 0 {
		p.fail(key, "%s holds no PEM CERTIFICATE block (-----BEGIN CERTIFICATE-----)", file)
		return
	}
	if p.c.certs == nil {
		p.c.certs = map[string][]string{}
	}
	p.c.certs[name] = out
}

// checkFragment reports whether x is well-formed XML content: elements
// balanced, attributes quoted, entities known; no XML declaration.
func checkFragment(x string) error {
	if strings.Contains(x, "<?xml") {
		return errors.New("an XML declaration (<?xml ...?>) cannot stand inside a document")
	}
	d := xml.NewDecoder(strings.NewReader("<_>" + x + "</_>"))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return errors.New(strings.Replace(se.Msg, "closed by </_>", "is never closed", 1))
			}
			return err
		}
	}
}

// The Snom language names whose files snomprov knows: the <gui-languages>
// example of the Snom wiki (gui_lang_<code>.xml); the web files follow the
// same codes (web_lang_EN.xml in Wazo's language list).
var snomLanguages = map[string]string{
	"Catalan": "CA", "Cestina": "CZ", "Dansk": "DK", "Deutsch": "DE", "English": "EN",
	"English(UK)": "UK", "Espanol": "SP", "Francais": "FR", "Italiano": "IT",
}

func knownLanguages() string {
	names := make([]string, 0, len(snomLanguages))
	for n := range snomLanguages {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// languageFile is the file of a language: its own, or gui_lang_DE.xml /
// web_lang_DE.xml for a Snom name; "" for an unknown name.
func languageFile(l config.Language, web bool) string {
	if l.File != "" {
		return l.File
	}
	code, ok := snomLanguages[l.Name]
	if !ok {
		return ""
	}
	if web {
		return "web_lang_" + code + ".xml"
	}
	return "gui_lang_" + code + ".xml"
}

func (p *preparer) modules(at string, row phone.Model, chain []string) {
	for i, t := range chain {
		if msg := row.ModuleError(t, i); msg != "" {
			p.fail(field.Prefix(at, indexKey("modules", i)), "%s", msg)
		}
	}
}

// moduleNames checks that a chain names expansion modules, when there is
// no known model to check it against.
func (p *preparer) moduleNames(at string, chain []string) {
	for i, t := range chain {
		if mod, ok := phone.Lookup(t); !ok || mod.Family != phone.FamilyModule {
			p.fail(field.Prefix(at, indexKey("modules", i)), "%q is not an expansion module; the catalogue knows %s", t, strings.Join(phone.ModuleTypes(), ", "))
		}
	}
}

// firmware checks that the firmware keys fit how the device takes firmware.
func (p *preparer) firmware(at, name string, row phone.Model, m config.Model) {
	if row.Family == phone.FamilyDECT {
		if m.Firmware != "" {
			p.fail(field.Prefix(at, "firmware"), "%s is a DECT base: it takes firmware through [%s.dect] (url, version, branch, handsets), not a desk phone's image", name, at)
		}
		return
	}
	if !m.DECT.IsZero() {
		p.fail(field.Prefix(at, "dect"), "%s is not a DECT base (it is a %s device); use firmware for its image", name, row.Family)
	}
	if m.FirmwareUXM != "" && len(row.Modules) == 0 {
		p.fail(field.Prefix(at, "firmware_uxm"), "%s takes no expansion modules, so it has no module firmware", name)
	}
	if m.Firmware == "" {
		return
	}
	file := m.Firmware
	if i := strings.IndexAny(file, "?#"); i >= 0 {
		file = file[:i]
	}
	file = path.Base(file)
	ext := path.Ext(file)
	switch {
	case row.Firmware == phone.FirmwareBin && ext == ".swu":
		p.fail(field.Prefix(at, "firmware"), "%s takes a .bin image; %s is a .swu image (D8xx)", name, file)
	case row.Firmware == phone.FirmwareSWU && ext == ".bin":
		p.fail(field.Prefix(at, "firmware"), "%s takes a .swu image; %s is a .bin image", name, file)
	case ext == ".fwu":
		p.fail(field.Prefix(at, "firmware"), "%s is a DECT image (.fwu); %s takes a %s image", file, name, row.Firmware)
	}
	if t, _, _ := strings.Cut(file, "-"); phone.ValidModel(t) && !strings.EqualFold(t, name) {
		p.fail(field.Prefix(at, "firmware"), "%s is an image for %s, not for %s", file, t, name)
	}
}

// device checks one scope's keys, identities and containers against one
// catalogue row with its modules chain.
func (p *preparer) device(at string, row phone.Model, chain []string, s config.Settings, keys config.FKeys, ct config.Containers, book []config.PhonebookEntry) {
	for _, pr := range problems(row, chain, s, keys, ct, book) {
		p.fail(field.Prefix(at, pr.Key), "%s", pr.Msg)
	}
}

// problems lists what row cannot take, keyed relative to the scope.
func problems(row phone.Model, chain []string, s config.Settings, keys config.FKeys, ct config.Containers, book []config.PhonebookEntry) []*field.Error {
	var out field.Errors
	n := row.KeyCount(chain)
	badKey := func(idx int, f config.FKey) bool {
		if idx >= n || !row.Reads(phone.ContainerFunctionKeys) {
			return true
		}
		if f.Context == "" || f.Context == "active" || row.Identities == 0 {
			return false
		}
		id, err := strconv.Atoi(f.Context)
		return err != nil || id < 1 || id > row.Identities
	}
	// The common case, nothing wrong, allocates nothing: the sorted walk
	// that names the problems runs only when there is one.
	anyBad := false
	for idx, f := range keys {
		anyBad = anyBad || badKey(idx, f)
	}
	for _, idx := range sortedKeysIf(keys, anyBad) {
		k := "fkeys." + strconv.Itoa(idx)
		switch {
		case !row.Reads(phone.ContainerFunctionKeys) || n == 0:
			out.Add(k, "%s has no free function keys (it reads no <functionKeys>); remove the key", row.Type)
		case idx >= n:
			out.Add(k, "function key %d is outside %s's range %s%s", idx, row.Type, rangeText(row, chain), moduleHint(row, chain))
		case badKey(idx, keys[idx]):
			out.Add(k+".context", "context %q is not \"active\" or an identity of %s (1-%d)", keys[idx].Context, row.Type, row.Identities)
		}
	}
	badIdentity := func(name string, idx int) bool {
		return row.Identities > 0 && strings.HasPrefix(name, "user_") && (idx < 1 || idx > row.Identities)
	}
	anyBad = false
	for name, st := range s {
		for idx := range st.Indexed {
			anyBad = anyBad || badIdentity(name, idx)
		}
	}
	if anyBad {
		for _, name := range sortedNames(s) {
			for _, idx := range sortedKeys(s[name].Indexed) {
				if badIdentity(name, idx) {
					out.Add("settings."+name+"."+strconv.Itoa(idx), "identity %d is beyond %s's SIP identities (idx 1-%d)", idx, row.Type, row.Identities)
				}
			}
		}
	}
	for _, c := range []struct {
		key, container string
		set            bool
	}{
		{"setting_files", phone.ContainerSettingFiles, len(ct.SettingFiles) > 0},
		{"dialplan", phone.ContainerDialplan, len(ct.Dialplan) > 0},
		{"replacement_plan", phone.ContainerReplacementPlan, ct.ReplacementPlan != ""},
		{"certificates", phone.ContainerCertificates, len(ct.Certificates) > 0},
		{"uploads", phone.ContainerUploads, len(ct.Uploads) > 0},
		{"gui_languages", phone.ContainerGUILanguages, len(ct.GUILanguages) > 0},
		{"web_languages", phone.ContainerWebLanguages, len(ct.WebLanguages) > 0},
		{"phonebook", phone.ContainerTbook, len(book) > 0},
	} {
		if c.set && !row.Reads(c.container) {
			out.Add(c.key, "%s does not read <%s> (it reads %s); remove it", row.Type, c.container, strings.Join(row.Containers, ", "))
		}
	}
	if (len(ct.GUILanguages) > 0 || len(ct.WebLanguages) > 0) && !row.Reads(phone.ContainerSettingFiles) && row.Reads(phone.ContainerGUILanguages) {
		out.Add("gui_languages", "%s reads no <setting-files>, which language lists need", row.Type)
	}
	return out
}

func rangeText(row phone.Model, chain []string) string {
	rs := row.KeyRanges(chain)
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return fmt.Sprintf("0-%d: %s", row.KeyCount(chain)-1, strings.Join(parts, ", "))
}

func moduleHint(row phone.Model, chain []string) string {
	if len(row.Modules) == 0 || len(chain) >= row.MaxModules {
		return ""
	}
	mod, _ := phone.Lookup(row.Modules[0])
	return fmt.Sprintf("; an expansion module adds %d keys: modules = [%q] in [models.%s] or the phone", mod.Keys, row.Modules[0], row.Type)
}

// global checks the top-level settings and containers against every
// configured model the catalogue knows: a global setting reaches them all.
func (p *preparer) global() {
	for _, name := range sortedNames(p.c.cfg.Models) {
		row, ok := phone.Lookup(name)
		if !ok {
			continue
		}
		// Global values may serve the models that take them; for the
		// others they are a warning, not an error.
		for _, pr := range problems(row, p.c.cfg.Models[name].Modules, p.c.cfg.Settings, nil, p.c.cfg.Containers, p.c.cfg.Phonebook) {
			if strings.HasPrefix(pr.Key, "settings.") {
				p.warn(pr.Key, "%s: a global setting reaches [models.%s] too, where it has no effect", pr.Msg, name)
			} else {
				p.warn(pr.Key, "%s: it is left out of %s's file", pr.Msg, name)
			}
		}
	}
}

// phone checks one [[phones]] entry against its model, or, without one,
// against every model it may be.
func (p *preparer) phone(at string, ph *config.Phone) {
	if ph.Model != "" {
		row, ok := phone.Lookup(ph.Model)
		p.lines(at, ph, row.Identities, row.Type) // zero when the catalogue does not know it: nothing held against
		if !ok {
			p.moduleNames(at, ph.Modules)
			if _, configured := p.c.cfg.Models[ph.Model]; !configured {
				p.warn(field.Prefix(at, "model"), "%s is not in the model catalogue (snomprov models); this phone's function keys, identities and containers could not be checked", ph.Model)
			}
			return
		}
		chain := ph.Modules
		if chain == nil {
			chain = p.c.cfg.Models[ph.Model].Modules
		} else {
			p.modules(at, row, chain)
		}
		p.device(at, row, chain, ph.Settings, ph.FKeys, ph.Containers, ph.Phonebook)
		return
	}
	p.moduleNames(at, ph.Modules)
	p.lines(at, ph, p.reachIdentities(), "any model this phone may be")
	reach := p.reachable
	// key -> the first problem and the models that have it
	type finding struct {
		msg    string   // the first model's
		msgs   []string // every model's, for a key no model takes
		models []string
	}
	var found map[string]*finding
	var order []string
	for _, row := range reach {
		chain := ph.Modules
		if chain == nil {
			chain = p.c.cfg.Models[row.Type].Modules
		}
		for _, pr := range problems(row, chain, ph.Settings, ph.FKeys, ph.Containers, ph.Phonebook) {
			if found == nil {
				found = map[string]*finding{}
			}
			f := found[pr.Key]
			if f == nil {
				f = &finding{msg: pr.Msg}
				found[pr.Key] = f
				order = append(order, pr.Key)
			}
			f.models = append(f.models, row.Type)
			if !slices.Contains(f.msgs, pr.Msg) {
				f.msgs = append(f.msgs, pr.Msg)
			}
		}
	}
	if len(order) == 0 {
		return
	}
	names := make([]string, len(reach))
	for i, r := range reach {
		names[i] = r.Type
	}
	for _, k := range order {
		f := found[k]
		key := field.Prefix(at, k)
		if len(f.models) == len(reach) {
			p.fail(key, "no model this phone may be (it has no model: %s) takes it: %s", shortList(names), strings.Join(f.msgs, "; "))
			continue
		}
		var fits []string
		for _, n := range names {
			if !slices.Contains(f.models, n) {
				fits = append(fits, n)
			}
		}
		p.warn(key, "%s; the phone has no model: it fits %s but not %s; set model to check it", f.msg, shortList(fits), shortList(f.models))
	}
}

// reach is every model a phone without a model may be: the configured
// [models] the catalogue knows, else every device of the catalogue.
func (p *preparer) reach() []phone.Model {
	var out []phone.Model
	for _, name := range sortedNames(p.c.cfg.Models) {
		if row, ok := phone.Lookup(name); ok {
			out = append(out, row)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, row := range phone.Models() {
		if row.Family != phone.FamilyModule {
			out = append(out, row)
		}
	}
	return out
}

// shortList names up to six models.
func shortList(names []string) string {
	if len(names) <= 6 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:6], ", "), len(names)-6)
}

func indexKey(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// sortedKeysIf is sortedKeys(m) when want, else nil.
func sortedKeysIf[V any](m map[int]V, want bool) []int {
	if !want {
		return nil
	}
	return sortedKeys(m)
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
