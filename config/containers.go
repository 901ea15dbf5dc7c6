package config

import "fmt"

// Containers are the Snom XML containers beyond <phone-settings>,
// <functionKeys> and <tbook>. Every scope has them: the top level of the
// file (every phone), [models.<type>] and each [[phones]] entry. The
// provision package checks them against the model catalogue and renders
// them; config only decodes.
type Containers struct {
	// SettingFiles are files in http.files_dir (or absolute URLs) chained
	// after the generated file through <setting-files>.
	SettingFiles []string `toml:"setting_files"`
	// Dialplan is the <dialplan> of <TEMPLATE> rules.
	Dialplan []DialplanRule `toml:"dialplan"`
	// ReplacementPlan is the XML inside <ReplacementPlan> (<key> and
	// <setting_replacement> elements), checked as well-formed.
	ReplacementPlan string `toml:"replacement_plan"`
	// Certificates are PEM files (relative to the config file) written as
	// trusted certificates in <certificates>.
	Certificates []string `toml:"certificates"`
	// Uploads is the <uploads> list: customisation files the phone fetches.
	Uploads []Upload `toml:"uploads"`
	// GUILanguages and WebLanguages list the phone and web interface
	// languages offered, by Snom's language names ("Deutsch"), served
	// from http.files_dir.
	GUILanguages []Language `toml:"gui_languages"`
	WebLanguages []Language `toml:"web_languages"`
	// PhonebookMode: "replace" (the first book a phone reads carries
	// complete="true": the user's own contacts are wiped) or "add".
	PhonebookMode string `toml:"phonebook_mode"`
	// XML is a raw fragment written inside <settings> as it is, for
	// anything the typed keys cannot say; checked as well-formed.
	XML string `toml:"xml"`
}

// DialplanRule is one <TEMPLATE MATCH Timeout User Rewrite/>.
type DialplanRule struct {
	Match   string  `toml:"match"`
	Timeout Seconds `toml:"timeout"`
	User    string  `toml:"user"` // phone | ip
	Rewrite string  `toml:"rewrite"`
}

// Seconds is a whole number of seconds that remembers whether it was set
// (a dial plan's Timeout = 0 means "dial at once", unset means "leave out").
type Seconds struct {
	N   int
	Set bool
}

// UnmarshalTOML accepts a non-negative integer.
func (s *Seconds) UnmarshalTOML(v any) error {
	n, ok := v.(int64)
	if !ok || n < 0 || n > 3600 {
		return subErr(nil, "must be a whole number of seconds from 0 to 3600, like 5, not %s", tomlTypeName(v))
	}
	*s = Seconds{N: int(n), Set: true}
	return nil
}

// Upload is one <uploads> <file url type/>.
type Upload struct {
	File string `toml:"file"` // in http.files_dir, or an absolute URL
	Type string `toml:"type"` // gui, web, font, defaults, license, moh, gui_xml_... (the <uploads> tag page)
}

// Language is one language of <gui-languages> or <web-languages>: a Snom
// language name ("Deutsch") whose file snomprov knows, or a table
// { name = "Custom", file = "gui_lang_Custom.xml" }.
type Language struct {
	Name string
	File string
}

// UnmarshalTOML accepts "Deutsch" or { name = "...", file = "..." }.
func (l *Language) UnmarshalTOML(v any) error {
	*l = Language{}
	switch v := v.(type) {
	case string:
		l.Name = v
		return nil
	case map[string]any:
		for _, k := range sortedKeys(v) {
			s, ok := v[k].(string)
			switch {
			case k != "name" && k != "file":
				return subErr([]string{k}, `unknown key in a language; use name and file`)
			case !ok:
				return subErr([]string{k}, "must be a string")
			case k == "name":
				l.Name = s
			default:
				l.File = s
			}
		}
		if l.Name == "" {
			return subErr(nil, `missing "name"; write { name = "Custom", file = "gui_lang_Custom.xml" }`)
		}
		return nil
	}
	return subErr(nil, `a language is a name like "Deutsch" or a table { name = "...", file = "..." }, not %s`, tomlTypeName(v))
}

// DECTFirmware is [models.<DECT base>.dect]: the firmware a DECT base and
// its handsets are brought to, written as <firmware-settings> inside the
// base's settings file (Wazo's DECT templates).
type DECTFirmware struct {
	URL      string                 `toml:"url"`      // <firmware>: the base URL of the .fwu files
	Version  string                 `toml:"version"`  // fp_fwu_sw_version
	Branch   string                 `toml:"branch"`   // fp_fwu_branch_version
	Handsets map[string]DECTVersion `toml:"handsets"` // by handset type (M65, M85, ...): pp_fwu_*
}

// IsZero reports whether no DECT firmware is configured.
func (d DECTFirmware) IsZero() bool {
	return d.URL == "" && d.Version == "" && d.Branch == "" && len(d.Handsets) == 0
}

// DECTVersion is one handset type's firmware.
type DECTVersion struct {
	Version string `toml:"version"` // pp_fwu_sw_version type="..."
	Branch  string `toml:"branch"`  // pp_fwu_branch_version type="..."
}

func (s Seconds) String() string { return fmt.Sprint(s.N) }
