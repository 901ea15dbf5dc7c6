package provision

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/phone"
)

// The containers beyond <phone-settings> and <functionKeys>, each as Snom's
// tag page writes it ("Desk Phone Configuration Files", the <dialplan>,
// <ReplacementPlan>, <certificates>, <uploads>, <tbook>, <gui-languages>
// and <setting-files> pages; docs/models.md names them).

// part is one document of a chained set: the file the phone fetches
// (partTop), and the documents a <setting-files> top file lists, which
// snomprov serves itself under /snomprov/.
type part uint8

const (
	partTop part = iota
	partSettings
	partGUI
	partWeb
)

// PartPrefix is where the documents a <setting-files> file lists live.
const PartPrefix = "/snomprov/"

const genericStem = "generic" // the general file of a type without [models.X]

var partSuffix = map[part]string{partSettings: "", partGUI: "-gui-languages", partWeb: "-web-languages"}

// partName is the file name (under PartPrefix) of part p of the file k.
func partName(k docKey, p part) string {
	model := k.model
	if model == "" {
		model = genericStem
	}
	var stem string
	switch k.kind {
	case KindGeneral:
		stem = model
	case KindPhone:
		stem = k.mac.String()
	case KindCombined:
		stem = model + "-" + k.mac.String()
	}
	return stem + partSuffix[p] + ".xml"
}

// PartIdentity reads a part's name (the path after PartPrefix) for the
// HTTP router: the phone type and MAC it belongs to. ok is false when the
// name has not the shape of a part.
func PartIdentity(name string) (model string, mac phone.MAC, hasMAC, ok bool) {
	k, _, ok := parsePart(name)
	return k.model, k.mac, !k.mac.IsZero(), ok
}

func parsePart(name string) (docKey, part, bool) {
	stem, ok := strings.CutSuffix(name, ".xml")
	if !ok {
		return docKey{}, 0, false
	}
	p := partSettings
	for _, q := range [...]part{partGUI, partWeb} {
		if rest, ok := strings.CutSuffix(stem, partSuffix[q]); ok {
			p, stem = q, rest
			break
		}
	}
	model, macText, hasMAC := strings.Cut(stem, "-")
	if !hasMAC {
		if mac, err := phone.ParseMAC(stem); err == nil && len(stem) == 12 {
			return docKey{kind: KindPhone, mac: mac}, p, true
		}
	}
	if model == genericStem {
		model = ""
	} else if !phone.ValidModel(model) {
		return docKey{}, 0, false
	}
	if !hasMAC {
		return docKey{kind: KindGeneral, model: model}, p, true
	}
	mac, err := phone.ParseMAC(macText)
	if err != nil || len(macText) != 12 {
		return docKey{}, 0, false
	}
	return docKey{kind: KindCombined, model: model, mac: mac}, p, true
}

// Part returns a document a <setting-files> file lists; ok is false for a
// name that is no part of this configuration's files.
func (c *Catalog) Part(base, name string) (Doc, bool) {
	k, p, ok := parsePart(name)
	if !ok || !c.hasPart(k, p) {
		return Doc{}, false
	}
	k.part = p
	return c.lookup(base, k), true
}

func (c *Catalog) hasPart(k docKey, p part) bool {
	if k.kind != KindPhone && c.modelKey(k.model) != k.model {
		return false
	}
	if k.kind != KindGeneral && !c.HasPhone(k.mac) {
		return false
	}
	return slices.Contains(c.parts(k), p)
}

// content is what one settings document says, gathered from its scopes.
type content struct {
	model       phone.Model // the catalogue row, when known
	known       bool
	settings    config.Settings
	keys        config.FKeys
	book        []config.PhonebookEntry
	bookFirst   int  // index of the first entry (after the shared book's)
	complete    bool // <tbook complete="true">
	dialplan    []config.DialplanRule
	replacement []string
	certs       []string // base64 DER, one per certificate
	uploads     []config.Upload
	raw         []string
	chained     []string // file names in files_dir or absolute URLs
	gui, web    []config.Language
	dect        *config.DECTFirmware
}

// reads reports whether the document's device reads container; an unknown
// device gets everything the configuration says.
func (ct *content) reads(container string) bool { return !ct.known || ct.model.Reads(container) }

// chains reports whether the file the phone fetches is a <setting-files>
// list rather than the <settings> themselves.
func (ct *content) chains() bool {
	return ct.reads(phone.ContainerSettingFiles) && (len(ct.chained) > 0 || len(ct.gui) > 0 || len(ct.web) > 0)
}

// parts lists the documents the file k consists of.
func (c *Catalog) parts(k docKey) []part {
	ct := c.content(k, "")
	if !ct.chains() {
		return []part{partTop}
	}
	out := []part{partTop, partSettings}
	if len(ct.gui) > 0 && ct.reads(phone.ContainerGUILanguages) {
		out = append(out, partGUI)
	}
	if len(ct.web) > 0 && ct.reads(phone.ContainerWebLanguages) {
		out = append(out, partWeb)
	}
	return out
}

// content gathers the document k: general = global + model, phone = the
// phone alone, combined = all three. base is only needed for settings.
func (c *Catalog) content(k docKey, base string) content {
	var ct content
	model := k.model
	var p *config.Phone
	if k.kind != KindGeneral {
		p = c.phones[k.mac]
		if k.kind == KindPhone && p != nil {
			model = p.Model
		}
	}
	ct.model, ct.known = phone.Lookup(model)
	m := c.cfg.Models[model]
	var scopes []config.Containers
	switch k.kind {
	case KindGeneral:
		scopes = []config.Containers{c.cfg.Containers, m.Containers}
		ct.settings = c.generalSettings(base, k.model)
		ct.keys = m.FKeys
		ct.book = append(slices.Clone(c.cfg.Phonebook), m.Phonebook...)
		ct.complete = c.bookMode(nil, model) == bookReplace
	case KindPhone:
		if p != nil {
			scopes = []config.Containers{p.Containers}
			ct.settings, ct.keys = c.phoneSettings(p, base), p.FKeys
			ct.book = p.Phonebook
			ct.bookFirst = c.sharedBook(p)
			ct.complete = ct.bookFirst == 0 && c.bookMode(p, model) == bookReplace
		}
	case KindCombined:
		scopes = []config.Containers{c.cfg.Containers, m.Containers}
		ct.settings = c.generalSettings(base, k.model)
		ct.keys = make(config.FKeys)
		for i, f := range m.FKeys {
			ct.keys[i] = f
		}
		ct.book = append(slices.Clone(c.cfg.Phonebook), m.Phonebook...)
		if p != nil {
			scopes = append(scopes, p.Containers)
			ct.settings = merge(ct.settings, c.phoneSettings(p, base))
			for i, f := range p.FKeys {
				ct.keys[i] = f
			}
			ct.book = append(ct.book, p.Phonebook...)
		}
		ct.complete = c.bookMode(p, model) == bookReplace
	}
	if k.kind != KindPhone && ct.known && ct.model.Family == phone.FamilyDECT && !m.DECT.IsZero() {
		d := m.DECT
		ct.dect = &d
	}
	for _, s := range scopes {
		// The innermost scope that has a dial plan or languages wins; the
		// other containers add up.
		if len(s.Dialplan) > 0 {
			ct.dialplan = s.Dialplan
		}
		if len(s.GUILanguages) > 0 {
			ct.gui = s.GUILanguages
		}
		if len(s.WebLanguages) > 0 {
			ct.web = s.WebLanguages
		}
		if s.ReplacementPlan != "" {
			ct.replacement = append(ct.replacement, s.ReplacementPlan)
		}
		for _, f := range s.Certificates {
			for _, b64 := range c.certs[f] {
				if !slices.Contains(ct.certs, b64) {
					ct.certs = append(ct.certs, b64)
				}
			}
		}
		ct.uploads = append(ct.uploads, s.Uploads...)
		if s.XML != "" {
			ct.raw = append(ct.raw, s.XML)
		}
		for _, f := range s.SettingFiles {
			if !slices.Contains(ct.chained, f) {
				ct.chained = append(ct.chained, f)
			}
		}
	}
	return ct
}

const (
	bookReplace = "replace"
	bookAdd     = "add"
)

// bookMode is phonebook_mode for a phone (nil: the general file of model):
// the phone's, else its model's, else the global one; default replace.
func (c *Catalog) bookMode(p *config.Phone, model string) string {
	for _, m := range []string{modeOf(p), c.cfg.Models[model].PhonebookMode, c.cfg.PhonebookMode} {
		if m != "" {
			return m
		}
	}
	return bookReplace
}

func modeOf(p *config.Phone) string {
	if p == nil {
		return ""
	}
	return p.PhonebookMode
}

// sharedBook is the number of shared entries the phone's general file
// holds before its own book: the phone's own entries are numbered after
// them so that they add to the shared book instead of overwriting it.
// Without a model the phone may be of any configured type: the largest.
func (c *Catalog) sharedBook(p *config.Phone) int {
	n := 0
	if p.Model != "" {
		n = len(c.cfg.Models[p.Model].Phonebook)
	} else {
		for _, m := range c.cfg.Models {
			n = max(n, len(m.Phonebook))
		}
	}
	return len(c.cfg.Phonebook) + n
}

// settingsDoc writes the <settings> document of ct.
func (c *Catalog) settingsDoc(w *writer, ct *content, base string, showSecrets bool) {
	w.raw("<settings>\n")
	w.phoneSettings(ct.settings, c.defaultPerm, showSecrets)
	if ct.reads(phone.ContainerFunctionKeys) {
		w.functionKeys(ct.keys, c.defaultPerm)
	}
	if ct.reads(phone.ContainerTbook) {
		w.tbook(ct.book, ct.bookFirst, ct.complete)
	}
	if ct.reads(phone.ContainerDialplan) {
		w.dialplan(ct.dialplan)
	}
	if ct.reads(phone.ContainerReplacementPlan) {
		for _, r := range ct.replacement {
			w.raw("  <ReplacementPlan>\n")
			w.fragment(r, "    ")
			w.raw("  </ReplacementPlan>\n")
		}
	}
	if ct.reads(phone.ContainerCertificates) && len(ct.certs) > 0 {
		w.raw("  <certificates>\n")
		for _, b := range ct.certs {
			w.raw("    <certificate type=\"base64\">")
			w.raw(b)
			w.raw("</certificate>\n")
		}
		w.raw("  </certificates>\n")
	}
	if ct.reads(phone.ContainerUploads) && len(ct.uploads) > 0 {
		w.raw("  <uploads>\n")
		for _, u := range ct.uploads {
			w.raw("    <file")
			w.attr("url", fileURL(base, u.File, showSecrets))
			w.attr("type", u.Type)
			w.raw("/>\n")
		}
		w.raw("  </uploads>\n")
	}
	if ct.dect != nil {
		w.dectFirmware(ct.dect, base, showSecrets)
	}
	for _, r := range ct.raw {
		w.fragment(r, "  ")
	}
	w.raw("</settings>\n")
}

// settingFiles writes the <setting-files> list of the file k: the
// generated settings first, then the chained files, then the language lists.
func (c *Catalog) settingFiles(w *writer, k docKey, ct *content, base string, showSecrets bool) {
	w.raw("<setting-files>\n")
	file := func(u string) {
		w.raw("  <file")
		w.attr("url", u)
		w.raw("/>\n")
	}
	b := base
	if !showSecrets {
		b = redact.URL(base)
	}
	file(b + PartPrefix + partName(k, partSettings))
	for _, f := range ct.chained {
		file(fileURL(base, f, showSecrets))
	}
	for _, p := range c.parts(k) {
		if p == partGUI || p == partWeb {
			file(b + PartPrefix + partName(k, p))
		}
	}
	w.raw("</setting-files>\n")
}

// languages writes <gui-languages> or <web-languages>.
func (w *writer) languages(tag string, langs []config.Language, base string, web bool, showSecrets bool) {
	w.raw("<" + tag + ">\n")
	for _, l := range langs {
		w.raw("  <language")
		w.attr("url", fileURL(base, languageFile(l, web), showSecrets))
		w.attr("name", l.Name)
		w.raw("/>\n")
	}
	w.raw("</" + tag + ">\n")
}

// fileURL: an absolute URL is used verbatim, a name is a file of files_dir
// (served at the root).
func fileURL(base, name string, showSecrets bool) string {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		if !showSecrets {
			return redact.URL(name)
		}
		return name
	}
	if !showSecrets {
		base = redact.URL(base)
	}
	return base + "/" + (&url.URL{Path: strings.TrimPrefix(name, "/")}).EscapedPath()
}

// dialplan writes <dialplan e="2"> with one <TEMPLATE> per rule.
func (w *writer) dialplan(rules []config.DialplanRule) {
	if len(rules) == 0 {
		return
	}
	w.raw("  <dialplan e=\"2\">\n")
	for _, r := range rules {
		w.raw("    <TEMPLATE")
		w.attr("MATCH", r.Match)
		if r.Timeout.Set {
			w.attr("Timeout", strconv.Itoa(r.Timeout.N))
		}
		if r.User != "" {
			w.attr("User", r.User)
		}
		if r.Rewrite != "" {
			w.attr("Rewrite", r.Rewrite)
		}
		w.raw("/>\n")
	}
	w.raw("  </dialplan>\n")
}

// dectFirmware writes a DECT base's <firmware-settings>: the base URL of
// the .fwu files and the version of the base and of each handset type.
func (w *writer) dectFirmware(d *config.DECTFirmware, base string, showSecrets bool) {
	w.raw("  <firmware-settings>\n")
	if d.URL != "" {
		u := firmwareURL(base, d.URL)
		if !showSecrets {
			u = redact.URL(u)
		}
		w.setting("firmware", "", "", u, false)
	}
	if d.Version != "" {
		w.setting("fp_fwu_sw_version", "", "", d.Version, false)
	}
	if d.Branch != "" {
		w.setting("fp_fwu_branch_version", "", "", d.Branch, false)
	}
	for _, t := range sortedNames(d.Handsets) {
		h := d.Handsets[t]
		if h.Version != "" {
			w.typed("pp_fwu_sw_version", t, h.Version)
		}
		if h.Branch != "" {
			w.typed("pp_fwu_branch_version", t, h.Branch)
		}
	}
	w.raw("  </firmware-settings>\n")
}

func (w *writer) typed(name, typ, value string) {
	w.raw("    <" + name)
	w.attr("type", typ)
	w.raw(">")
	w.text(value)
	w.raw("</" + name + ">\n")
}

// fragment writes checked, well-formed XML as it is (text nodes keep
// their whitespace), after indent.
func (w *writer) fragment(x, indent string) {
	w.raw(indent)
	w.raw(strings.TrimSpace(x))
	w.raw("\n")
}
