package provision

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/redact"
)

const xmlHeader = `<?xml version="1.0" encoding="utf-8"?>` + "\n"

// writer builds one Snom XML document. Escaping follows snom-provisioning.md
// §4: & < > " become entities; bytes that XML 1.0 cannot carry (control
// characters, broken UTF-8) are dropped rather than breaking the file.
type writer struct{ b []byte }

func (w *writer) raw(s string) { w.b = append(w.b, s...) }

func (w *writer) text(s string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				w.b = append(w.b, "&amp;"...)
			case c == '<':
				w.b = append(w.b, "&lt;"...)
			case c == '>':
				w.b = append(w.b, "&gt;"...)
			case c == '"':
				w.b = append(w.b, "&quot;"...)
			case c < 0x20 && c != '\t' && c != '\n' && c != '\r', c == 0x7f:
				// not representable in XML 1.0 text
			default:
				w.b = append(w.b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			i++
			continue
		}
		w.b = append(w.b, s[i:i+n]...)
		i += n
	}
}

func (w *writer) attr(name, value string) {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, `="`...)
	w.text(value)
	w.b = append(w.b, '"')
}

// validName reports whether a setting name can be an XML element name.
// Snom names use [A-Za-z0-9_]; we also allow '-' and '.' after the first.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	// "xml..." names are reserved by XML itself.
	return !(len(s) >= 3 && (s[0]|0x20) == 'x' && (s[1]|0x20) == 'm' && (s[2]|0x20) == 'l')
}

// leadingSettings are written first, in this order: Wazo notes that
// auto_reboot_on_setting_change must be at the top to take effect, and the
// provisioning pointers are easiest to spot there. Everything else follows
// sorted by name, so the output is deterministic.
var leadingSettings = []string{"auto_reboot_on_setting_change", "setting_server", "update_policy", "firmware_status"}

func settingOrder(s config.Settings) []string {
	names := make([]string, 0, len(s))
	for _, lead := range leadingSettings {
		if _, ok := s[lead]; ok {
			names = append(names, lead)
		}
	}
	rest := make([]string, 0, len(s))
	for name := range s {
		if !isLeading(name) {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

func isLeading(name string) bool {
	for _, l := range leadingSettings {
		if l == name {
			return true
		}
	}
	return false
}

// phoneSettings writes <phone-settings e="2"> with every setting.
func (w *writer) phoneSettings(s config.Settings, defaultPerm string, showSecrets bool) {
	w.raw("  <phone-settings e=\"2\">\n")
	for _, name := range settingOrder(s) {
		st := s[name]
		secret := !showSecrets && config.IsSecret(name)
		if len(st.Indexed) > 0 {
			for _, i := range sortedKeys(st.Indexed) {
				iv := st.Indexed[i]
				w.setting(name, strconv.Itoa(i), permOr(iv.Perm, st.Perm, defaultPerm), iv.Value, secret)
			}
			continue
		}
		w.setting(name, "", permOr(st.Perm, defaultPerm), st.Value, secret)
	}
	w.raw("  </phone-settings>\n")
}

func (w *writer) setting(name, idx, perm, value string, secret bool) {
	w.raw("    <")
	w.raw(name)
	if idx != "" {
		w.attr("idx", idx)
	}
	w.attr("perm", perm)
	w.raw(">")
	if secret && value != "" {
		value = redact.Mask
	}
	w.text(value)
	w.raw("</")
	w.raw(name)
	w.raw(">\n")
}

func permOr(perms ...string) string {
	for _, p := range perms {
		if p != "" {
			return p
		}
	}
	return "R"
}

// functionKeys writes <functionKeys e="2"> with fkey idx context label perm.
func (w *writer) functionKeys(k config.FKeys, defaultPerm string) {
	if len(k) == 0 {
		return
	}
	w.raw("  <functionKeys e=\"2\">\n")
	for _, i := range sortedKeys(k) {
		f := k[i]
		w.raw("    <fkey")
		w.attr("idx", strconv.Itoa(i))
		ctx := f.Context
		if ctx == "" {
			ctx = "active"
		}
		w.attr("context", ctx)
		for _, a := range [...][2]string{{"label", f.Label}, {"short_label", f.ShortLabel}, {"lp", f.LP}, {"clp", f.CLP}, {"default_text", f.DefaultText}} {
			if a[1] != "" {
				w.attr(a[0], a[1])
			}
		}
		w.attr("perm", permOr(f.Perm, defaultPerm))
		w.raw(">")
		w.text(f.Value)
		if f.XML != "" {
			// A key defined by XML: the definition is child elements of
			// <fkey> (the <functionKeys> tag page), checked well-formed.
			w.raw(strings.TrimSpace(f.XML))
		}
		w.raw("</fkey>\n")
	}
	w.raw("  </functionKeys>\n")
}

// tbook writes <tbook>, numbering entries from first. complete="true"
// makes the book replace the phone's (the only way entries removed from
// the config disappear, and it wipes the user's own contacts); without it
// the entries are added.
func (w *writer) tbook(entries []config.PhonebookEntry, first int, complete bool) {
	if len(entries) == 0 {
		return
	}
	w.raw("  <tbook e=\"2\"")
	if complete {
		w.raw(" complete=\"true\"")
	}
	w.raw(">\n")
	for i, e := range entries {
		ctx, typ := e.Context, e.Type
		if ctx == "" {
			ctx = "active"
		}
		if typ == "" {
			typ = "none"
		}
		w.raw("    <item")
		w.attr("context", ctx)
		w.attr("type", typ)
		w.attr("index", strconv.Itoa(first+i))
		w.raw(">")
		for _, f := range [...][2]string{{"name", bookName(e)}, {"first_name", e.FirstName}, {"last_name", e.LastName}, {"number", e.Number}, {"number_type", e.NumberType}} {
			if f[1] == "" && f[0] != "name" && f[0] != "number" {
				continue
			}
			w.raw("<" + f[0] + ">")
			w.text(f[1])
			w.raw("</" + f[0] + ">")
		}
		w.raw("</item>\n")
	}
	w.raw("  </tbook>\n")
}

// bookName is the entry's name, or first and last name when it has none.
func bookName(e config.PhonebookEntry) string {
	if e.Name != "" {
		return e.Name
	}
	return strings.TrimSpace(e.FirstName + " " + e.LastName)
}
