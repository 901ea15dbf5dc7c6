package phone

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The model catalogue: every Snom device snomprov knows, one row per
// model in models.csv with the source each row's facts come from
// (docs/models.md lists it). It is the one place that knows a device's
// identities, function-key ranges, expansion modules, the XML containers
// its firmware reads and how it takes firmware.

//go:embed models.csv
var modelsCSV string

// Family is the kind of device.
type Family string

// Families.
const (
	FamilyDesk       Family = "desk"       // desk phones: D1xx, D3xx, D7xx, D8xx, snom3xx/7xx/8xx
	FamilyModule     Family = "module"     // expansion modules: D3, D7, D7C, D8C
	FamilyDECT       Family = "dect"       // DECT bases: M300, M400, M700, M900
	FamilyConference Family = "conference" // conference phones: C520, C620, MeetingPoint
	FamilyPaging     Family = "paging"     // PA1 paging adapter
)

// FirmwareKind is how a device takes firmware.
type FirmwareKind string

// Firmware kinds.
const (
	// FirmwareBin: firmware_status names a <firmware-settings> file whose
	// <firmware> is a .bin image ("Firmware Update via Autoprovisioning").
	FirmwareBin FirmwareKind = "bin"
	// FirmwareSWU: the same chain with a .swu image (D8xx).
	FirmwareSWU FirmwareKind = "swu"
	// FirmwareDECT: <firmware-settings> inside the base's settings file,
	// <firmware> a base URL and fp_fwu_*/pp_fwu_* versions per part.
	FirmwareDECT FirmwareKind = "dect"
	// FirmwareUXM: an expansion module's image, sent as firmware_uxm.
	FirmwareUXM FirmwareKind = "uxm"
)

// The XML containers of Snom's settings files ("Desk Phone Configuration
// Files" and the tag pages), as the catalogue names them.
const (
	ContainerPhoneSettings   = "phone-settings"
	ContainerFunctionKeys    = "functionKeys"
	ContainerTbook           = "tbook"
	ContainerDialplan        = "dialplan"
	ContainerReplacementPlan = "ReplacementPlan"
	ContainerCertificates    = "certificates"
	ContainerUploads         = "uploads"
	ContainerGUILanguages    = "gui-languages"
	ContainerWebLanguages    = "web-languages"
	ContainerSettingFiles    = "setting-files"
	ContainerFirmware        = "firmware-settings"
)

// Containers lists every container name a catalogue row may use.
var Containers = []string{
	ContainerPhoneSettings, ContainerFunctionKeys, ContainerTbook, ContainerDialplan,
	ContainerReplacementPlan, ContainerCertificates, ContainerUploads,
	ContainerGUILanguages, ContainerWebLanguages, ContainerSettingFiles, ContainerFirmware,
}

// Model is one row of the catalogue.
type Model struct {
	Type   string `json:"type"` // as the device reports it (snomD785); a module's own name (D7)
	Family Family `json:"family"`
	Legacy bool   `json:"legacy"` // sold before the D series; 8.x firmware
	// Identities is the number of SIP identities (idx 1..Identities of
	// user_* settings); 0 when no source gives it, and nothing is checked.
	Identities int `json:"identities"`
	// Keys is the number of the device's own free function keys (fkey idx
	// 0..Keys-1); for a module, the keys each module adds.
	Keys       int          `json:"keys"`
	Modules    []string     `json:"modules,omitempty"` // expansion module types it takes
	MaxModules int          `json:"max_modules,omitempty"`
	Containers []string     `json:"containers"` // the XML containers its firmware reads
	Firmware   FirmwareKind `json:"firmware"`
	Source     string       `json:"source"` // URL (title) the row's facts come from
	Note       string       `json:"note,omitempty"`
}

// Reads reports whether the device's firmware reads container.
func (m Model) Reads(container string) bool { return slices.Contains(m.Containers, container) }

// TakesModule reports whether module type t can be attached.
func (m Model) TakesModule(t string) bool { return slices.Contains(m.Modules, t) }

// KeyRange is one run of function-key indexes: the phone's own keys or one
// module in the chain.
type KeyRange struct {
	Owner string // the phone type, or "D7 #1" for the first module
	First int
	Last  int // inclusive
}

func (r KeyRange) String() string { return fmt.Sprintf("%d-%d (%s)", r.First, r.Last, r.Owner) }

// KeyRanges numbers the function keys of m with the modules chain
// attached, in daisy-chain order: the phone's own keys first, then each
// module's keys (the <functionKeys> tag page: idx 0..own + modules ×
// module keys − 1). Unknown or unfit module types are skipped; ModuleError
// says why.
func (m Model) KeyRanges(chain []string) []KeyRange {
	var out []KeyRange
	next := 0
	if m.Keys > 0 {
		out = append(out, KeyRange{Owner: m.Type, First: 0, Last: m.Keys - 1})
		next = m.Keys
	}
	for i, t := range chain {
		mod, ok := Lookup(t)
		if !ok || mod.Family != FamilyModule || !m.TakesModule(t) || i >= m.MaxModules {
			continue
		}
		out = append(out, KeyRange{Owner: fmt.Sprintf("%s #%d", t, i+1), First: next, Last: next + mod.Keys - 1})
		next += mod.Keys
	}
	return out
}

// ModuleRanges lists, per module type m takes, the index range of the
// module at each position of a chain of that type alone (D7 #1, #2, #3).
func (m Model) ModuleRanges() map[string][]KeyRange {
	if len(m.Modules) == 0 {
		return nil
	}
	out := make(map[string][]KeyRange, len(m.Modules))
	for _, t := range m.Modules {
		chain := slices.Repeat([]string{t}, m.MaxModules)
		out[t] = m.KeyRanges(chain)[min(1, m.Keys):]
	}
	return out
}

// KeyCount is the number of function-key indexes with chain attached
// (KeyRanges' total, without building them: check asks per phone).
func (m Model) KeyCount(chain []string) int {
	n := m.Keys
	for i, t := range chain {
		if mod, ok := Lookup(t); ok && mod.Family == FamilyModule && m.TakesModule(t) && i < m.MaxModules {
			n += mod.Keys
		}
	}
	return n
}

// ModuleError says why module type t cannot be the pos'th (0-based) module
// of m, or "" when it can.
func (m Model) ModuleError(t string, pos int) string {
	mod, ok := Lookup(t)
	switch {
	case !ok || mod.Family != FamilyModule:
		return fmt.Sprintf("%q is not an expansion module; the catalogue knows %s", t, strings.Join(ModuleTypes(), ", "))
	case len(m.Modules) == 0:
		return fmt.Sprintf("%s takes no expansion modules", m.Type)
	case !m.TakesModule(t):
		return fmt.Sprintf("%s takes %s, not %s", m.Type, strings.Join(m.Modules, " or "), t)
	case pos >= m.MaxModules:
		return fmt.Sprintf("%s takes at most %d modules", m.Type, m.MaxModules)
	}
	return ""
}

var catalogue = mustParse(modelsCSV)

// Models returns every row, in the file's order.
func Models() []Model { return slices.Clone(catalogue.rows) }

// Lookup finds a device by its type as it reports it ("snomD785"), or a
// module by its name ("D7C").
func Lookup(t string) (Model, bool) {
	i, ok := catalogue.byType[t]
	if !ok {
		return Model{}, false
	}
	return catalogue.rows[i], true
}

// ModuleTypes lists the expansion modules the catalogue knows.
func ModuleTypes() []string {
	var out []string
	for _, m := range catalogue.rows {
		if m.Family == FamilyModule {
			out = append(out, m.Type)
		}
	}
	return out
}

type parsedCatalogue struct {
	rows   []Model
	byType map[string]int
}

func mustParse(text string) parsedCatalogue {
	c, err := parseCatalogue(text)
	if err != nil {
		panic("phone: models.csv: " + err.Error())
	}
	return c
}

// parseCatalogue reads models.csv. The file is embedded, so an error is a
// bug caught by the package's tests.
func parseCatalogue(text string) (parsedCatalogue, error) {
	r := csv.NewReader(strings.NewReader(text))
	r.Comment = '#'
	r.FieldsPerRecord = 11
	recs, err := r.ReadAll()
	if err != nil {
		return parsedCatalogue{}, err
	}
	c := parsedCatalogue{byType: make(map[string]int, len(recs))}
	for n, f := range recs {
		m := Model{Type: f[0], Family: Family(f[1]), Firmware: FirmwareKind(f[8]), Source: f[9], Note: f[10]}
		var errs []string
		atoi := func(s, what string) int {
			if s == "" {
				return 0
			}
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				errs = append(errs, what+" "+strconv.Quote(s)+" is not a count")
			}
			return v
		}
		m.Legacy = f[2] == "true"
		m.Identities = atoi(f[3], "identities")
		m.Keys = atoi(f[4], "keys")
		m.Modules = strings.Fields(f[5])
		m.MaxModules = atoi(f[6], "max_modules")
		m.Containers = strings.Fields(f[7])
		switch m.Family {
		case FamilyDesk, FamilyModule, FamilyDECT, FamilyConference, FamilyPaging:
		default:
			errs = append(errs, "unknown family "+strconv.Quote(f[1]))
		}
		switch m.Firmware {
		case FirmwareBin, FirmwareSWU, FirmwareDECT, FirmwareUXM:
		default:
			errs = append(errs, "unknown firmware kind "+strconv.Quote(f[8]))
		}
		for _, ct := range m.Containers {
			if !slices.Contains(Containers, ct) {
				errs = append(errs, "unknown container "+strconv.Quote(ct))
			}
		}
		if m.Family != FamilyModule && !ValidModel(m.Type) {
			errs = append(errs, "type "+strconv.Quote(m.Type)+" is not a Snom phone type")
		}
		if !strings.HasPrefix(m.Source, "http") {
			errs = append(errs, "no source URL")
		}
		if _, dup := c.byType[m.Type]; dup {
			errs = append(errs, "duplicate row")
		}
		if len(errs) > 0 {
			return parsedCatalogue{}, fmt.Errorf("row %d (%s): %s", n+1, m.Type, strings.Join(errs, "; "))
		}
		c.byType[m.Type] = len(c.rows)
		c.rows = append(c.rows, m)
	}
	// Module names must resolve to module rows.
	for _, m := range c.rows {
		for _, t := range m.Modules {
			i, ok := c.byType[t]
			if !ok || c.rows[i].Family != FamilyModule {
				return parsedCatalogue{}, fmt.Errorf("%s: module %q has no module row", m.Type, t)
			}
		}
		if len(m.Modules) > 0 && m.MaxModules == 0 {
			return parsedCatalogue{}, fmt.Errorf("%s: modules without max_modules", m.Type)
		}
	}
	return c, nil
}
