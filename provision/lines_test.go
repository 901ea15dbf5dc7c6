package provision

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
)

func loadTOML(t *testing.T, text string) *config.Config {
	t.Helper()
	name := filepath.Join(t.TempDir(), "snomprov.toml")
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(name)
	if err != nil {
		t.Fatalf("config does not load: %v", err)
	}
	return cfg
}

// TestLinesRender: each line becomes exactly the user_* settings Snom
// documents for its identity, [lines] fills what a line leaves out, and a
// raw setting of the same name and idx wins.
func TestLinesRender(t *testing.T) {
	cfg := loadTOML(t, `
[server]
advertise = "10.0.0.2"
[lines]
host = "pbx.example.com"
outbound = "sbc.example.com:5061"
[[phones]]
mac = "000413A11FA7"
model = "snomD785"
lines = [
  { account = "101", password = "pw101", name = "Alice" },
  { identity = 3, account = "900", password = "pw900", auth_user = "a900", host = "other.example", outbound = "", mailbox = "*97" },
]
settings = { user_realname = { 3 = "Hotline" } }
`)
	c := newCatalog(t, cfg)
	d, ok := c.Phone(c.DefaultBase(), mustMAC("000413A11FA7"))
	if !ok {
		t.Fatal("phone not found")
	}
	s := parseSettings(t, d.Body)
	var got []string
	for _, st := range s.PhoneSettings.Settings {
		if strings.HasPrefix(st.XMLName.Local, "user_") {
			got = append(got, st.XMLName.Local+"["+st.Idx+"]="+st.Value+" "+st.Perm)
		}
	}
	slices.Sort(got)
	want := []string{
		"user_active[1]=on R", "user_active[3]=on R",
		"user_host[1]=pbx.example.com R", "user_host[3]=other.example R",
		"user_mailbox[3]=*97 R",
		"user_name[1]=101 R", "user_name[3]=900 R",
		"user_outbound[1]=sbc.example.com:5061 R", "user_outbound[3]=sbc.example.com:5061 R",
		"user_pass[1]=pw101 R", "user_pass[3]=pw900 R",
		"user_pname[3]=a900 R",
		"user_realname[1]=Alice R", "user_realname[3]=Hotline R",
	}
	if !slices.Equal(got, want) {
		t.Errorf("user_* settings:\n got %q\nwant %q", got, want)
	}
	files, err := c.Files(mustMAC("000413A11FA7"), "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.Contains(string(f.Body), "pw101") || strings.Contains(string(f.Body), "pw900") {
			t.Errorf("a line's password is shown in %s:\n%s", f.Path, f.Body)
		}
	}
}

// TestLinesCheck: each problem of a line with its place in the file.
func TestLinesCheck(t *testing.T) {
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"beyond the model's identities", `
[lines]
host = "pbx"
[[phones]]
mac = "000413A11FA7"
model = "snomD120"
lines = [{ account = "1" }, { identity = 9, account = "2" }]
`, []string{":7:29: phones[0].lines[1]: identity 9 is beyond snomD120's SIP identities (1-2); remove the line or give the phone a model with more"}},
		{"no account, no registrar, twice the same identity", `
[[phones]]
mac = "000413A11FA7"
model = "snomD785"
lines = [{ password = "x", host = "pbx" }, { identity = 1, account = "2" }]
`, []string{
			":5:10: phones[0].lines[0].account: a line needs an account (the SIP user, written as user_name)",
			":5:44: phones[0].lines[1]: identity 1 is also lines[0]; give each line its own identity",
			":5:44: phones[0].lines[1].host: a line needs a registrar: set host here or in [lines] host = \"pbx.example.com\"",
		}},
		{"bad perm", `
[lines]
host = "pbx"
perm = "X"
`, []string{`:4:1: lines.perm: unknown perm "X"; use one of ["R" "RW" "!" "&" "$" " " "V"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, _ := checkTOML(t, tt.toml)
			if !slices.Equal(errs, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", errs, tt.want)
			}
		})
	}
}
