package phone

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestCatalogueHasEveryModelOfTheIssue(t *testing.T) {
	for _, ty := range strings.Fields(`snomD120 snomD140 snomD150 snomD305 snomD315 snomD335 snomD345 snomD375 snomD385
		snomD712 snomD713 snomD715 snomD717 snomD725 snomD735 snomD745 snomD765 snomD785
		snomD812 snomD815 snomD862 snomD865 D3 D7 D7C D8C snomM300 snomM400 snomM700 snomM900
		snomC520 snomC620 snomMP snomPA1 snom300 snom320 snom370 snom710 snom715 snom720 snom725 snom760 snom820 snom821 snom870`) {
		m, ok := Lookup(ty)
		if !ok {
			t.Errorf("%s is not in the catalogue", ty)
			continue
		}
		if m.Source == "" || len(m.Containers) == 0 {
			t.Errorf("%s: row without source or containers: %+v", ty, m)
		}
	}
	if _, ok := Lookup("snomX999"); ok {
		t.Error("an unknown type was found")
	}
}

func TestKeyRanges(t *testing.T) {
	d785, _ := Lookup("snomD785")
	tests := []struct {
		chain []string
		want  string
		count int
	}{
		{nil, "0-23 (snomD785)", 24},
		{[]string{"D7"}, "0-23 (snomD785) 24-41 (D7 #1)", 42},
		{[]string{"D7", "D7C"}, "0-23 (snomD785) 24-41 (D7 #1) 42-89 (D7C #2)", 90},
		{[]string{"D3"}, "0-23 (snomD785)", 24}, // a D3 does not fit a D785
		{[]string{"D7", "D7", "D7", "D7"}, "0-23 (snomD785) 24-41 (D7 #1) 42-59 (D7 #2) 60-77 (D7 #3)", 78},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range d785.KeyRanges(tt.chain) {
			got = append(got, r.String())
		}
		if strings.Join(got, " ") != tt.want || d785.KeyCount(tt.chain) != tt.count {
			t.Errorf("KeyRanges(%v) = %v (%d); want %s (%d)", tt.chain, got, d785.KeyCount(tt.chain), tt.want, tt.count)
		}
	}
	c520, _ := Lookup("snomC520")
	if n := c520.KeyCount(nil); n != 0 {
		t.Errorf("C520 has %d keys", n)
	}
}

func TestModuleError(t *testing.T) {
	d785, _ := Lookup("snomD785")
	d305, _ := Lookup("snomD305")
	tests := []struct {
		m    Model
		mod  string
		pos  int
		want string
	}{
		{d785, "D7", 0, ""},
		{d785, "D7C", 2, ""},
		{d785, "D7", 3, "at most 3"},
		{d785, "D3", 0, "takes D7 or D7C, not D3"},
		{d785, "snomD785", 0, "not an expansion module"},
		{d305, "D3", 0, "takes no expansion modules"},
	}
	for _, tt := range tests {
		got := tt.m.ModuleError(tt.mod, tt.pos)
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%s.ModuleError(%s, %d) = %q; want %q", tt.m.Type, tt.mod, tt.pos, got, tt.want)
		}
	}
}

func TestFamiliesAndFirmware(t *testing.T) {
	for ty, want := range map[string]FirmwareKind{"snomD785": FirmwareBin, "snomD865": FirmwareSWU, "snomM900": FirmwareDECT, "D7C": FirmwareUXM} {
		if m, _ := Lookup(ty); m.Firmware != want {
			t.Errorf("%s firmware %q, want %q", ty, m.Firmware, want)
		}
	}
	if m, _ := Lookup("snomC520"); m.Reads(ContainerFunctionKeys) || m.Family != FamilyConference {
		t.Errorf("C520: %+v", m)
	}
	if m, _ := Lookup("snomM900"); m.Reads(ContainerFunctionKeys) || !m.Reads(ContainerFirmware) {
		t.Errorf("M900: %+v", m)
	}
}

func TestParseCatalogueRejectsBadRows(t *testing.T) {
	const src = "https://example.com/x"
	for _, row := range []string{
		"snomD1,desk,false,x,0,,,phone-settings,bin," + src + ",",
		"snomD1,desk,false,1,0,,,phone-book,bin," + src + ",",
		"snomD1,phone,false,1,0,,,phone-settings,bin," + src + ",",
		"snomD1,desk,false,1,0,,,phone-settings,tar," + src + ",",
		"snomD1,desk,false,1,0,,,phone-settings,bin,,",
		"snomD1,desk,false,1,0,D9,3,phone-settings,bin," + src + ",",
		"D1,desk,false,1,0,,,phone-settings,bin," + src + ",",
		"snomD1,desk,false,1,0,,,phone-settings,bin," + src + ",\nsnomD1,desk,false,1,0,,,phone-settings,bin," + src + ",",
	} {
		if _, err := parseCatalogue(row); err == nil {
			t.Errorf("parseCatalogue(%q) accepted it", row)
		}
	}
}

// TestModelsDocListsEveryRow keeps docs/models.md true to models.csv.
func TestModelsDocListsEveryRow(t *testing.T) {
	doc, err := os.ReadFile("../docs/models.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Models() {
		if !strings.Contains(string(doc), "| "+m.Type+" | "+string(m.Family)) {
			t.Errorf("docs/models.md has no row for %s", m.Type)
		}
		for _, mod := range m.Modules {
			var rs []string
			for i, r := range m.ModuleRanges()[mod] {
				rs = append(rs, fmt.Sprintf("#%d %d-%d", i+1, r.First, r.Last))
			}
			if want := mod + ": " + strings.Join(rs, ", "); !strings.Contains(string(doc), want) {
				t.Errorf("docs/models.md lacks %s's ranges %q", m.Type, want)
			}
		}
	}
}

func TestModuleRanges(t *testing.T) {
	d785, _ := Lookup("snomD785")
	r := d785.ModuleRanges()
	var got []string
	for _, t := range []string{"D7", "D7C"} {
		for _, kr := range r[t] {
			got = append(got, kr.String())
		}
	}
	want := "24-41 (D7 #1) 42-59 (D7 #2) 60-77 (D7 #3) 24-71 (D7C #1) 72-119 (D7C #2) 120-167 (D7C #3)"
	if strings.Join(got, " ") != want {
		t.Errorf("ModuleRanges = %v, want %s", got, want)
	}
	if d305, _ := Lookup("snomD305"); d305.ModuleRanges() != nil {
		t.Error("a phone without modules has module ranges")
	}
}
