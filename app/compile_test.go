package app

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/plan"
)

// testLAN is the LAN the tests' servers are compiled for: lo exists on
// every machine, and nothing here opens a socket.
var testLAN = plan.LAN{Interface: "lo", Prefix: netip.MustParsePrefix("10.79.0.1/24"), Advertise: netip.MustParseAddr("10.79.0.1")}

// goodConfig is a file every server accepts; edit changes one part of it.
func goodConfig(t *testing.T, dir string, edit func(string) string) *config.Config {
	t.Helper()
	src := fmt.Sprintf(`
[server]
interface = "lo"
state_dir = %q
[http]
listen = "127.0.0.1:8080"
firmware_dir = %q
[pnp]
answer = "snom"
[dhcp]
enabled = true
pool = "10.79.0.100-10.79.0.199"
[status]
admin_password = "one"
[settings]
language = "English"
`, dir, filepath.Join(dir, "fw"))
	if edit != nil {
		src = edit(src)
	}
	cfg, err := config.Parse(filepath.Join(dir, "snomprov.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// observed is what phones and people get from the running servers.
type observed struct {
	general, pnpURL, option66, pool, statusCode, statusLine string
}

func observe(t *testing.T, a *Appliance) observed {
	t.Helper()
	srv := a.servers
	rec := httptest.NewRecorder()
	srv.http.ServeHTTP(rec, httptest.NewRequest("GET", "http://10.79.0.1:8080/snomD785.htm", nil))
	st := httptest.NewRecorder()
	srv.page.ServeHTTP(st, httptest.NewRequest("GET", "/", nil))
	d := srv.dhcp.Options()
	return observed{
		general:    rec.Body.String(),
		pnpURL:     srv.pnp.Options().URL(netip.MustParseAddr("10.79.0.1")),
		option66:   d.UpdateServer,
		pool:       d.PoolStart.String() + "-" + d.PoolEnd.String(),
		statusCode: fmt.Sprint(st.Code),
		statusLine: a.statusLine(time.Now()),
	}
}

// TestReloadAllOrNothing: a new file that any one server rejects changes
// nothing anywhere (HTTP bytes, PnP URL, DHCP options, status page, systemd
// status); a good one changes everything.
func TestReloadAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	inv, err := inventory.Open("", inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := goodConfig(t, dir, nil)
	srv := newServers(testLAN, inv, quiet)
	p, err := srv.compile(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	a := &Appliance{cfg: first, inv: inv, servers: srv, log: quiet, net: testLAN}
	before := observe(t, a)
	if before.statusCode != "401" || !strings.Contains(before.general, "English") {
		t.Fatalf("the first config is not served: %+v", before)
	}
	// Each rejected by exactly one part; every one also changes the
	// language, the URL, the pool and the admin password, so a partial
	// apply would show.
	change := `
[models.snomD785]
[models.snomD785.settings]
language = "Deutsch"
`
	bad := []struct{ name, want string }{
		{"http rejects", "http.files_dir"},
		{"pnp rejects", "pnp.answer"},
		{"dhcp rejects", "dhcp.pool"},
		{"catalog rejects", "http.url"},
	}
	edits := map[string]func(string) string{
		"http rejects": func(s string) string {
			return strings.Replace(s, "[http]\n", "[http]\nfiles_dir = \"/nonexistent/files\"\n", 1)
		},
		"pnp rejects": func(s string) string { return strings.Replace(s, `answer = "snom"`, `answer = "everyone"`, 1) },
		"dhcp rejects": func(s string) string {
			return strings.Replace(s, "10.79.0.120-10.79.0.150", "10.80.0.100-10.80.0.199", 1)
		},
		"catalog rejects": func(s string) string {
			return strings.Replace(s, "[http]\n", "[http]\nurl = \"http://10.79.0.1:8080/{serial}.xml\"\n", 1)
		},
	}
	common := func(s string) string {
		s = strings.Replace(s, `admin_password = "one"`, `admin_password = ""`, 1)
		s = strings.Replace(s, "10.79.0.100-10.79.0.199", "10.79.0.120-10.79.0.150", 1)
		return s + change
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			edit := edits[tt.name]
			a.load = func() (*config.Config, error) {
				return goodConfig(t, dir, func(s string) string { return edit(common(s)) }), nil
			}
			err := a.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reload error = %v, want one naming %s", err, tt.want)
			}
			a.reloadErr = ""
			if got := observe(t, a); got != before {
				t.Errorf("a refused reload changed what is served:\nbefore %+v\nafter  %+v", before, got)
			}
		})
	}
	a.load = func() (*config.Config, error) { return goodConfig(t, dir, common), nil }
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	after := observe(t, a)
	if !strings.Contains(after.general, "Deutsch") || after.pool != "10.79.0.120-10.79.0.150" || after.statusCode != "200" {
		t.Errorf("a good reload was not applied everywhere: %+v", after)
	}
}

// checkVerdict is `snomprov check`'s verdict: decode, then the compile on
// the LAN given by flags.
func checkVerdict(name string, data []byte) error {
	cfg, err := config.Decode(name, data)
	p, err := plan.CompileDecoded(cfg, err, testLAN, plan.Runtime{InterfaceExists: plan.InterfaceExists})
	p.Close()
	return err
}

// serveVerdict is the start of `snomprov serve` without its sockets: load
// the file, compile it on the LAN, make every server.
func serveVerdict(name string, data []byte) error {
	cfg, err := config.Parse(name, data)
	if err != nil {
		return err
	}
	inv, _ := inventory.Open("", inventory.Options{})
	srv := newServers(testLAN, inv, quiet)
	p, err := srv.compile(cfg)
	if err != nil {
		return err
	}
	if err := srv.build(p); err != nil {
		return err
	}
	p.Close()
	return nil
}

// checkServeSeeds are hand-written files: good ones and the traps of
// issue 11, each of which check once called fine and serve refused.
func checkServeSeeds(dir string) []string {
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	head := fmt.Sprintf("[server]\ninterface = \"lo\"\nstate_dir = %q\n", dir)
	return []string{
		head,
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.100-10.79.0.199\"\n",
		head + "[dhcp]\nenabled = true\n[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.79.0.50\"\n",
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.200-10.79.0.255\"\n",
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.100-10.79.0.199\"\nupdate_server = \"http://10.79.0.1/" + strings.Repeat("x", 260) + "\"\n",
		head + fmt.Sprintf("[http]\ntls_cert = %q\ntls_key = %q\n", notPEM, notPEM),
		head + "[pnp]\ninterfaces = [\"nosuchif0\"]\n",
		head + "[http]\nusername = \"prov\"\npassword = \"pw\"\nurl = \"http://10.79.0.1/\"\n",
		head + "[http]\nusername = \"prov\"\npassword = \"pw\"\n",
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.100-10.79.0.199\"\nupdate_filename = \"snom/settings.php\"\n",
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.100-10.79.0.199\"\nupdate_filename = \"snomD785.htm\"\n",
		head + "[pnp]\nanswer = \"configured\"\n",
		head + "[http]\nlisten = \":99999\"\n",
		head + "[dhcp]\nenabled = true\npool = \"10.79.0.100-10.79.0.199\"\nrouter = \"10.9.9.9\"\n",
	}
}

// TestCheckIsServe: check and serve's start give the same verdict on every
// seed (and FuzzCheckIsServe on what the fuzzer makes of them).
func TestCheckIsServe(t *testing.T) {
	dir := t.TempDir()
	for i, text := range checkServeSeeds(dir) {
		name := filepath.Join(dir, fmt.Sprintf("seed%d.toml", i))
		c, s := checkVerdict(name, []byte(text)), serveVerdict(name, []byte(text))
		if (c == nil) != (s == nil) {
			t.Errorf("seed %d: check says %v, serve says %v\n%s", i, c, s, text)
		}
	}
}

func FuzzCheckIsServe(f *testing.F) {
	dir := f.TempDir()
	for _, s := range checkServeSeeds(dir) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		name := filepath.Join(dir, "fuzz.toml")
		c, s := checkVerdict(name, []byte(text)), serveVerdict(name, []byte(text))
		if (c == nil) != (s == nil) {
			t.Fatalf("check says %v, serve says %v\n%s", c, s, text)
		}
	})
}

// TestTrapsAreCheckErrors: the configurations of issue 11 that check once
// called fine and that lock phones out are errors, with the fix named.
func TestTrapsAreCheckErrors(t *testing.T) {
	dir := t.TempDir()
	seeds := checkServeSeeds(dir)
	tests := []struct {
		seed int
		want string // "" = accepted
	}{
		{0, ""},
		{1, ""},
		{2, "dhcp.pool: DHCP needs a pool"},
		{3, "contains the network or broadcast address"},
		{4, "a DHCP option carries at most 253"},
		{5, "not.pem is not a PEM certificate"},
		{6, `pnp.interfaces[0]: interface "nosuchif0" does not exist`},
		{7, "http.url: Basic auth is on"},
		{8, ""}, // the default URL carries the credentials
		{9, "dhcp.update_filename: phones join option 66 and 67 into http://10.79.0.1/snom/settings.php"},
		{10, ""},
		{11, ""}, // a warning, not an error
		{12, "http.listen: port"},
		{13, "dhcp.router: router 10.9.9.9 is outside the interface's subnet"},
	}
	for _, tt := range tests {
		err := checkVerdict(filepath.Join(dir, "trap.toml"), []byte(seeds[tt.seed]))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("seed %d: unexpected error %v", tt.seed, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("seed %d: err = %v, want %q", tt.seed, err, tt.want)
		}
	}
}

// TestReloadRefusesSocketChanges: a reload that would need new sockets is
// refused whole, and the refusal names what changed.
func TestReloadRefusesSocketChanges(t *testing.T) {
	dir := t.TempDir()
	inv, _ := inventory.Open("", inventory.Options{})
	srv := newServers(testLAN, inv, quiet)
	p, err := srv.compile(goodConfig(t, dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.build(p); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ old, new, want string }{
		{`language = "English"`, `language = "Deutsch"`, ""},
		{`listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:9090"`, "http.listen"},
		{`answer = "snom"`, `answer = "snom"` + "\ninterfaces = [\"lo\", \"lo\"]", "[pnp] interfaces"},
	} {
		cfg := goodConfig(t, dir, func(s string) string { return strings.Replace(s, tt.old, tt.new, 1) })
		_, err := srv.reload(cfg)
		if (tt.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "nothing was reloaded"))) {
			t.Errorf("%s: %v, want %q", tt.new, err, tt.want)
		}
	}
}
