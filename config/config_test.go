package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/snomprov/snomprov/phone"
)

// mustParse parses a config that must be valid.
func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	return cfg
}

// parseErrors parses a config that must be invalid and returns its problems.
func parseErrors(t *testing.T, text string) Errors {
	t.Helper()
	cfg, err := CheckText("test.toml", []byte(text))
	if err == nil {
		t.Fatalf("no error; config: %+v", cfg)
	}
	if cfg != nil {
		t.Errorf("a config came back with the error")
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error is %T, not a non-empty Errors: %v", err, err)
	}
	return es
}

// TestProblems checks each problem the loader must catch: its key, its
// place in the file and a word of its message.
func TestProblems(t *testing.T) {
	fwDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(fwDir, "snomD785-10.1.73.4-SIP-r.bin"), []byte("fw"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		text string
		want string // "LINE:COL: key: message fragment"
	}{
		{"syntax error", "[http]\nlisten = \":80\n", `2:14: TOML syntax error: strings cannot contain newlines`},
		{"syntax error duplicate key", "[http]\nlisten = \":80\"\nlisten = \":81\"\n", `3:16: TOML syntax error: Key 'http.listen' has already been defined.`},
		{"unknown key", "[http]\nlisen = \":80\"\n", `2:1: http.lisen: unknown key (did you mean "listen"?)`},
		{"unknown key case", "[http]\nListen = \":80\"\n", `2:1: http.Listen: unknown key (keys are case-sensitive: write "listen")`},
		{"unknown table leaf", "[snmp]\ncommunity = \"x\"\n", `2:1: snmp.community: unknown key (in unknown table snmp)`},
		{"unknown key in phone", "[[phones]]\nmac = \"000413A11FA7\"\nmodle = \"snomD785\"\n", `3:1: phones[0].modle: unknown key (did you mean "model"?)`},
		{"unknown top-level key", "lsiten = 1\n", `1:1: lsiten: unknown key`},
		{"wrong type listen", "[http]\nlisten = 80\n", `2:1: http.listen: must be a string, not the integer 80; put the value in quotes, e.g. ":80"`},
		{"CRLF line ends", "[http]\r\nlisten = 80\r\nurl = \"x\"\r\n", `3:1: http.url: "x" is not an absolute`},
		{"byte-order mark", "\ufefflisten = 1\n", `1:1: listen: unknown key`},
		{"wrong type bool", "[pnp]\nenabled = \"yes\"\n", `2:1: pnp.enabled: must be true or false`},
		{"wrong type table", "http = 1\n", `1:1: http: must be a table`},
		{"wrong type array", "[pnp]\ninterfaces = \"eth0\"\n", `2:1: pnp.interfaces: must be an array, e.g. ["eth0"]`},
		{"wrong type array element", "[dhcp]\ndns = [\"10.0.0.1\", 5]\n", `2:20: dhcp.dns[1]: must be a string like "10.0.0.2"`},
		{"bad address", "[server]\nadvertise = \"10.0.0.500\"\n", `2:1: server.advertise: "10.0.0.500" is not an IP address`},
		{"advertise v6", "[server]\nadvertise = \"fe80::1\"\n", `2:1: server.advertise: must be an IPv4 address`},
		{"bad MAC", "[[phones]]\nmac = \"000413A11FA7\"\n[[phones]]\nmac = \"000413A11FA8\"\n[[phones]]\nmac = \"00:04:13:zz:1f:a7\"\n", `6:1: phones[2].mac: bad MAC address`},
		{"missing MAC", "[[phones]]\nmodel = \"snomD785\"\n", `1:1: phones[0].mac: a phone needs a mac`},
		{"duplicate phone", "[[phones]]\nmac = \"00:04:13:A1:1F:A7\"\n[[phones]]\nmac = \"0004.13a1.1fa7\"\n", `4:1: phones[1].mac: duplicate phone: MAC 000413A11FA7 is also phones[0] (line 1)`},
		{"bad url scheme", "[http]\nurl = \"ftp://10.0.0.2/\"\n", `2:1: http.url: "ftp://10.0.0.2/" is not an absolute http:// or https:// URL`},
		{"bad url relative", "[http]\nurl = \"/prov/\"\n", `2:1: http.url: "/prov/" is not an absolute`},
		{"bad url no host", "[http]\nurl = \"http:///x\"\n", `2:1: http.url: "http:///x" has no host`},
		{"bad url placeholder", "[http]\nurl = \"http://10.0.0.2/{MAC}.xml\"\n", `2:1: http.url: unknown placeholder {MAC}`},
		{"bad update_server", "[dhcp]\nupdate_server = \"10.0.0.2\"\n", `2:1: dhcp.update_server: "10.0.0.2" is not an absolute`},
		{"firmware missing", "[http]\nfirmware_dir = \"" + fwDir + "\"\n[models.snomD785]\nfirmware = \"snomD785-10.1.99-SIP-r.bin\"\n", `4:1: models.snomD785.firmware: firmware file snomD785-10.1.99-SIP-r.bin not found in firmware_dir`},
		{"firmware uxm missing", "[http]\nfirmware_dir = \"" + fwDir + "\"\n[models.snomD785]\nfirmware_uxm = \"snomD7C.bin\"\n", `4:1: models.snomD785.firmware_uxm: firmware file snomD7C.bin not found`},
		{"firmware escapes dir", "[http]\nfirmware_dir = \"" + fwDir + "\"\n[models.snomD785]\nfirmware = \"../etc/passwd\"\n", `4:1: models.snomD785.firmware: "../etc/passwd" must be a file name inside firmware_dir`},
		{"firmware bad url", "[models.snomD785]\nfirmware = \"ftp://x/fw.bin\"\n", `2:1: models.snomD785.firmware: "ftp://x/fw.bin" is not an absolute`},
		{"invalid model name", "[models.D785]\nfirmware = \"http://x/fw.bin\"\n", `1:1: models.D785: "D785" is not a Snom phone type`},
		{"invalid phone model", "[[phones]]\nmac = \"000413A11FA7\"\nmodel = \"snom D785\"\n", `3:1: phones[0].model: "snom D785" is not a Snom phone type`},
		{"bad perm", "[settings]\nlanguage = { value = \"English\", perm = \"W\" }\n", `2:33: settings.language.perm: unknown perm "W"`},
		{"bad perm indexed", "[settings]\nuser_name = { 1 = { value = \"1\", perm = \"rw\" } }\n", `2:34: settings.user_name.1.perm: unknown perm "rw"`},
		{"empty perm", "[settings]\nlanguage = { value = \"English\", perm = \"\" }\n", `2:33: settings.language.perm: an empty perm would mean "use default_perm"; write "RW"`},
		{"empty default perm", "[provision]\ndefault_perm = \"\"\n", `2:1: provision.default_perm: an empty perm would mean`},
		{"bad default perm", "[provision]\ndefault_perm = \"RO\"\n", `2:1: provision.default_perm: unknown perm "RO"`},
		{"bad fkey perm", "[[phones]]\nmac = \"000413A11FA7\"\n[phones.fkeys]\n0 = { value = \"line\", perm = \"X\" }\n", `4:23: phones[0].fkeys.0.perm: unknown perm "X"`},
		{"bad unknown_phones", "[http]\nunknown_phones = \"ignore\"\n", `2:1: http.unknown_phones: "ignore" is not allowed; use one of "generic", "deny", "allow"`},
		{"bad pnp answer", "[pnp]\nanswer = \"yes\"\n", `2:1: pnp.answer: "yes" is not allowed; use one of "snom", "configured", "all", "none"`},
		{"bad dhcp serve", "[dhcp]\nserve = \"snom\"\n", `2:1: dhcp.serve: "snom" is not allowed; use one of "all", "phones"`},
		{"bad log level", "[server]\nlog_level = \"verbose\"\n", `2:1: server.log_level: "verbose" is not allowed`},
		{"integer duration", "[dhcp]\nlease_time = 43200\n", `2:1: dhcp.lease_time: a bare number is not a duration (it would mean nanoseconds); write it as a string like "12h"`},
		{"bad duration", "[status]\nstale_after = \"1 day\"\n", `2:1: status.stale_after: "1 day" is not a duration`},
		{"short lease", "[dhcp]\nlease_time = \"10s\"\n", `2:1: dhcp.lease_time: 10s is too short; use at least "1m"`},
		{"tls cert without key", "[http]\ntls_cert = \"" + filepath.Join(fwDir, "snomD785-10.1.73.4-SIP-r.bin") + "\"\n", `2:1: http.tls_cert: tls_cert is set but tls_key is not`},
		{"tls key without cert", "[http]\ntls_key = \"" + filepath.Join(fwDir, "snomD785-10.1.73.4-SIP-r.bin") + "\"\n", `2:1: http.tls_key: tls_key is set but tls_cert is not`},
		{"tls file missing", "[http]\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n", `2:1: http.tls_cert: open /nonexistent/c.pem`},
		{"username without password", "[http]\nusername = \"prov\"\n", `2:1: http.username: username is set but password is not`},
		{"password without username", "[http]\npassword = \"x\"\n", `2:1: http.password: password is set but username is not`},
		{"admin user without password", "[status]\nadmin_user = \"root\"\n", `2:1: status.admin_user: admin_user is set but admin_password is not`},
		{"fkey index word", "[[phones]]\nmac = \"000413A11FA7\"\n[phones.fkeys]\nfirst = \"line\"\n", `4:1: phones[0].fkeys.first: function key index "first" is not an integer ≥ 0`},
		{"fkey index negative", "[models.snomD785.fkeys]\n-1 = \"line\"\n", `2:1: models.snomD785.fkeys.-1: function key index "-1" is not an integer ≥ 0`},
		{"fkey missing value", "[models.snomD785.fkeys]\n3 = { label = \"x\" }\n", `2:1: models.snomD785.fkeys.3: missing "value"`},
		{"fkey unknown attribute", "[models.snomD785.fkeys]\n3 = { value = \"line\", colour = \"red\" }\n", `2:23: models.snomD785.fkeys.3.colour: unknown key in a function key; use value, label, context, perm, short_label, lp, clp, default_text and xml`},
		{"fkey clp", "[models.snomD785.fkeys]\n3 = { value = \"line\", clp = \"yes\" }\n", `2:23: models.snomD785.fkeys.3.clp: clp is true or false ("1" or "0")`},
		{"dialplan timeout", "[[dialplan]]\nmatch = \"0\"\ntimeout = \"5s\"\n", `3:1: dialplan[0].timeout: must be a whole number of seconds from 0 to 3600, like 5, not the string "5s"`},
		{"language table", "gui_languages = [{ name = \"X\", url = \"y\" }]\n", `1:32: gui_languages[0].url: unknown key in a language; use name and file`},
		{"language type", "web_languages = [3]\n", `1:18: web_languages[0]: a language is a name like "Deutsch" or a table { name = "...", file = "..." }, not the integer 3`},
		{"setting name", "[settings]\n\"user-name\" = \"x\"\n", `2:1: settings.user-name: "user-name" is not a setting name`},
		{"setting name quoted", "[settings]\n\"user.name\" = \"x\"\n", `2:1: settings."user.name": "user.name" is not a setting name`},
		{"setting index", "[settings]\nuser_name = { one = \"x\" }\n", `2:15: settings.user_name.one: index "one" is not an integer ≥ 0`},
		{"setting array", "[settings]\nlanguage = [\"a\"]\n", `2:1: settings.language: a value must be a string, number or boolean, not an array`},
		{"setting empty table", "[settings]\nlanguage = {}\n", `2:1: settings.language: empty table`},
		{"setting table extra key", "[settings]\nlanguage = { value = \"x\", prem = \"R\" }\n", `2:27: settings.language.prem: unknown key in a setting`},
		{"phonebook type", "[[phonebook]]\nname = \"A\"\nnumber = \"1\"\ntype = \"enemy\"\n", `4:1: phonebook[0].type: "enemy" is not allowed`},
		{"phonebook no number", "[[phonebook]]\nname = \"A\"\n", `1:1: phonebook[0].number: a phonebook entry needs a number`},
		{"listen bad port", "[http]\nlisten = \":http\"\n", `2:1: http.listen: port "http" must be a number`},
		{"listen no port", "[http]\nlisten = \"10.0.0.2\"\n", `2:1: http.listen: "10.0.0.2" is not an address to listen on`},
		{"voice vlan", "[dhcp]\nvoice_vlan = 5000\n", `2:1: dhcp.voice_vlan: must be a VLAN ID from 1 to 4094`},
		{"bad domain", "[dhcp]\ndomain = \"office lan\"\n", `2:1: dhcp.domain: "office lan" is not a domain name`},
		{"bad interface", "[server]\ninterface = \"eth0 \"\n", `2:1: server.interface: "eth0 " is not a network interface name`},
		// [dhcp] only when enabled
		{"pool not a range", dhcpOn + "pool = \"10.0.0.100\"\n", `3:1: dhcp.pool: "10.0.0.100" is not a range`},
		{"pool reversed", dhcpOn + "pool = \"10.0.0.199-10.0.0.100\"\n", `3:1: dhcp.pool: "10.0.0.199-10.0.0.100" ends before it starts`},
		{"pool too wide", dhcpOn + "pool = \"10.0.0.1-10.1.0.1\"\n", `3:1: dhcp.pool: "10.0.0.1-10.1.0.1" spans more than a /16`},
		{"pool v6", dhcpOn + "pool = \"fe80::1-fe80::9\"\n", `3:1: dhcp.pool: "fe80::1-fe80::9" does not start with an IPv4 address`},
		{"no pool", dhcpOn, `1:1: dhcp.pool: DHCP needs a pool to serve from`},
		{"router in pool", dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\nrouter = \"10.0.0.150\"\n", `4:1: dhcp.router: router 10.0.0.150 is inside dhcp.pool`},
		{"advertise in pool", "[server]\nadvertise = \"10.0.0.120\"\n" + dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\n", `5:1: dhcp.pool: the pool 10.0.0.100-10.0.0.199 contains this server's address 10.0.0.120`},
		// A reservation inside the pool is allowed: it always wins (dhcp.TestReservations).
		{"reservations same MAC", dhcpOn + "[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.50\"\n[[dhcp.reservations]]\nmac = \"00-04-13-a1-1f-a7\"\nip = \"10.0.0.51\"\n", `7:1: dhcp.reservations[1].mac: MAC 00:04:13:a1:1f:a7 is reserved twice (dhcp.reservations[0] and [1])`},
		{"reservations same IP", dhcpOn + "[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.50\"\n[[dhcp.reservations]]\nmac = \"000413A11FA8\"\nip = \"10.0.0.50\"\n", `8:1: dhcp.reservations[1].ip: address 10.0.0.50 is reserved for both dhcp.reservations[0] and [1]`},
		{"reservation without ip", dhcpOn + "[[dhcp.reservations]]\nmac = \"000413A11FA7\"\n", `3:1: dhcp.reservations[0].ip: a reservation needs an ip`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := parseErrors(t, tt.text)
			want := "test.toml:" + tt.want
			for _, e := range es {
				if strings.HasPrefix(e.Error(), want) {
					return
				}
			}
			t.Fatalf("no problem starts with\n  %s\ngot:\n%v", want, es)
		})
	}
}

// CheckText is what `snomprov check` says of a text. compile_test.go sets
// it to config.Decode + plan.CompileDecoded (package config cannot import
// plan); Parse alone is what this package's own rules say.
var CheckText = Parse

const dhcpOn = "[dhcp]\nenabled = true\n"

// TestDHCPOffSkipsPoolChecks: a half-written [dhcp] does not stop a config
// that leaves DHCP off.
func TestDHCPOffSkipsPoolChecks(t *testing.T) {
	mustParse(t, "[dhcp]\nenabled = false\npool = \"10.0.0.199-10.0.0.100\"\n[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.150\"\n")
}

// TestAllProblemsAtOnce: one run reports every problem, in file order, each
// once, as FILE:LINE:COL: key: message lines.
func TestAllProblemsAtOnce(t *testing.T) {
	text := `[http]
listen = 80
url = "ftp://x"

[[phones]]
mac = "00:04:13:A1:1F:A7"
[phones.settings]
user_pass = { 1 = { value = "s", perm = "Q" } }

[[phones]]
mac = "000413a11fa7"

[[phones]]
mac = "nonsense"

[dhcp]
lease_time = 60
[snmp]
community = "public"
`
	es := parseErrors(t, text)
	want := []string{
		`test.toml:2:1: http.listen: must be a string, not the integer 80; put the value in quotes, e.g. ":80"`,
		`test.toml:3:1: http.url: "ftp://x" is not an absolute http:// or https:// URL with a host; write it like "http://10.0.0.2/", or leave it empty for the default`,
		`test.toml:8:34: phones[0].settings.user_pass.1.perm: unknown perm "Q"; ` + permHelp,
		`test.toml:11:1: phones[1].mac: duplicate phone: MAC 000413A11FA7 is also phones[0] (line 5); merge the two entries`,
		`test.toml:14:1: phones[2].mac: bad MAC address: "nonsense" has 'n'; write it like "00:04:13:A1:1F:A7" (colons, dashes, dots or none, any case)`,
		`test.toml:17:1: dhcp.lease_time: a bare number is not a duration (it would mean nanoseconds); write it as a string like "12h"`,
		`test.toml:19:1: snmp.community: unknown key (in unknown table snmp); see docs/configuration.md for every key`,
	}
	if got := es.Error(); got != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 3, Col: 7, Key: "phones[2].mac", Msg: "bad"}, "a.toml:3:7: phones[2].mac: bad"},
		{Error{File: "a.toml", Line: 3, Msg: "syntax"}, "a.toml:3:1: syntax"},
		{Error{File: "a.toml", Msg: "cannot read"}, "a.toml: cannot read"},
		{Error{Key: "dhcp.pool", Msg: "m"}, "(config): dhcp.pool: m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].File != path || !strings.Contains(es[0].Msg, "check the path") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadReadsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snomprov.toml")
	if err := os.WriteFile(path, []byte("[server]\nstate_dir = \"state\"\n[http]\nlisten = \":8081\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != path || cfg.HTTP.Listen != ":8081" {
		t.Fatalf("got Source %q listen %q", cfg.Source, cfg.HTTP.Listen)
	}
	// relative paths are relative to the file, not to the working directory
	if cfg.Server.StateDir != filepath.Join(dir, "state") || cfg.HTTP.FirmwareDir != filepath.Join(dir, "state", "firmware") {
		t.Fatalf("state_dir %q firmware_dir %q", cfg.Server.StateDir, cfg.HTTP.FirmwareDir)
	}
}

func TestFileDefaults(t *testing.T) {
	cfg := mustParse(t, "")
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.listen", cfg.HTTP.Listen, ":80"},
		{"pnp.enabled", cfg.PnP.Enabled, true},
		{"pnp.answer", cfg.PnP.Answer, ""}, // pnp's default (TestEffectiveDefaults)
		{"pnp.interfaces", len(cfg.PnP.Interfaces), 0},
		{"server.state_dir", cfg.Server.StateDir, "/var/lib/snomprov"},
		{"http.firmware_dir", cfg.HTTP.FirmwareDir, "/var/lib/snomprov/firmware"},
		{"http.unknown_phones", cfg.HTTP.UnknownPhones, ""},
		{"provision.default_perm", cfg.Provision.DefaultPerm, "R"},
		{"provision.pin_setting_server", cfg.Provision.PinSettingServer, PinConfigured},
		{"dhcp.enabled", cfg.DHCP.Enabled, false},
		{"dhcp.lease_time", cfg.DHCP.LeaseTime.Duration, 12 * time.Hour},
		{"dhcp.serve", cfg.DHCP.Serve, ""},
		{"status.stale_after", cfg.Status.StaleAfter.Duration, 24 * time.Hour},
		{"server.log_level", cfg.Server.LogLevel, "info"},
		{"Source", cfg.Source, "test.toml"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if cfg.IsSet("http.listen") {
		t.Error("IsSet reports a default as set")
	}
}

func TestDerivedDefaults(t *testing.T) {
	cfg := mustParse(t, `[server]
interface = "end0"
state_dir = "/srv/snomprov"
[status]
admin_password = "pw"
[[phonebook]]
name = "Reception"
number = "100"
`)
	if cfg.HTTP.FirmwareDir != "/srv/snomprov/firmware" {
		t.Errorf("firmware_dir follows state_dir: got %q", cfg.HTTP.FirmwareDir)
	}
	if len(cfg.PnP.Interfaces) != 1 || cfg.PnP.Interfaces[0] != "end0" {
		t.Errorf("pnp.interfaces defaults to [server.interface]: got %v", cfg.PnP.Interfaces)
	}
	if cfg.Status.AdminUser != "admin" {
		t.Errorf("admin_user defaults to admin with a password: got %q", cfg.Status.AdminUser)
	}
	if e := cfg.Phonebook[0]; e.Context != "active" || e.Type != "none" {
		t.Errorf("phonebook defaults: got %+v", e)
	}
	if !cfg.IsSet("server.interface") || cfg.IsSet("pnp.interfaces") {
		t.Error("IsSet: wrong keys")
	}

	// explicit keys keep their value
	cfg = mustParse(t, `[server]
interface = "end0"
[pnp]
interfaces = []
[http]
firmware_dir = "/opt/fw"
listen = "127.0.0.1:8080"
`)
	if len(cfg.PnP.Interfaces) != 0 || cfg.HTTP.FirmwareDir != "/opt/fw" || cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("explicit values lost: %v %q %q", cfg.PnP.Interfaces, cfg.HTTP.FirmwareDir, cfg.HTTP.Listen)
	}
	// absent keys of a present table keep their defaults
	if cfg.HTTP.Listen != "127.0.0.1:8080" || !cfg.PnP.Enabled || cfg.DHCP.LeaseTime.Duration != 12*time.Hour {
		t.Errorf("defaults lost next to explicit keys: %+v %+v", cfg.HTTP, cfg.PnP)
	}
}

func TestDefault(t *testing.T) {
	cfg := Default()
	if cfg.Source != "" || cfg.HTTP.Listen != ":8080" || !cfg.PnP.Enabled || cfg.PnP.Answer != "none" || cfg.DHCP.Enabled {
		t.Fatalf("embedded defaults: %+v", cfg)
	}
	if cfg.HTTPPort() != 8080 || cfg.Provision.DefaultPerm != "R" || cfg.Server.StateDir == "" {
		t.Fatalf("embedded defaults: %+v", cfg)
	}
	if cfg.HTTP.FirmwareDir != filepath.Join(cfg.Server.StateDir, "firmware") {
		t.Fatalf("firmware_dir %q does not follow state_dir %q", cfg.HTTP.FirmwareDir, cfg.Server.StateDir)
	}
	// Default is the decode of the embedded file, nothing else.
	again, err := parse(embeddedName, defaultTOML, cfg.Server.StateDir, fileDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.HTTP, cfg.HTTP) || again.PnP.Answer != cfg.PnP.Answer {
		t.Fatal("Default differs from the decode of default.toml")
	}
}

func TestDefaultStateDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	home := func() (string, error) { return "/home/ann", nil }
	noHome := func() (string, error) { return "", errors.New("no home") }
	yes := func(string) bool { return true }
	no := func(string) bool { return false }
	tests := []struct {
		name     string
		canWrite func(string) bool
		env      map[string]string
		home     func() (string, error)
		want     string
	}{
		{"root", yes, nil, home, "/var/lib/snomprov"},
		{"xdg", no, map[string]string{"XDG_STATE_HOME": "/x/state"}, home, "/x/state/snomprov"},
		{"relative xdg ignored", no, map[string]string{"XDG_STATE_HOME": "state"}, home, "/home/ann/.local/state/snomprov"},
		{"home", no, nil, home, "/home/ann/.local/state/snomprov"},
		{"nothing", no, nil, noHome, filepath.Join(os.TempDir(), "snomprov")},
	}
	for _, tt := range tests {
		if got := defaultStateDir(tt.canWrite, env(tt.env), tt.home); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	dir := t.TempDir()
	if !writable(filepath.Join(dir, "not", "yet")) {
		t.Error("writable: a creatable directory under a writable one")
	}
}

func TestSettingURL(t *testing.T) {
	host := netip.MustParseAddr("10.0.0.2")
	tests := []struct {
		name string
		text string
		host netip.Addr
		want string
	}{
		{"port 80", "", host, "http://10.0.0.2/"},
		{"port 8080", "[http]\nlisten = \":8080\"\n", host, "http://10.0.0.2:8080/"},
		{"explicit url", "[http]\nurl = \"http://prov.lan/snom/{mac}.xml\"\n", host, "http://prov.lan/snom/{mac}.xml"},
		{"advertise when no host", "[server]\nadvertise = \"10.0.0.9\"\n", netip.Addr{}, "http://10.0.0.9/"},
		{"listen host when no host", "[http]\nlisten = \"10.0.0.7:81\"\n", netip.Addr{}, "http://10.0.0.7:81/"},
		{"v6 host", "[http]\nlisten = \":8080\"\n", netip.MustParseAddr("fd00::2"), "http://[fd00::2]:8080/"},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.text).SettingURL(tt.host); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	for _, p := range []string{cert, key} {
		if err := os.WriteFile(p, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tls := "[http]\ntls_cert = \"" + cert + "\"\ntls_key = \"" + key + "\"\n"
	// A configured certificate does not change the URL DHCP and PnP hand
	// out: the first fetch is the plain-HTTP bootstrap on http.listen.
	if got := mustParse(t, tls+"listen = \":80\"\nhttps_listen = \":443\"\n").SettingURL(host); got != "http://10.0.0.2/" {
		t.Errorf("with tls_cert, listen :80: got %q", got)
	}
}

func TestHTTPPort(t *testing.T) {
	for listen, want := range map[string]int{":80": 80, "10.0.0.2:8080": 8080, "[::1]:81": 81} {
		cfg := &Config{HTTP: HTTP{Listen: listen}}
		if got := cfg.HTTPPort(); got != want {
			t.Errorf("%s: got %d, want %d", listen, got, want)
		}
	}
}

func TestIsSecret(t *testing.T) {
	tests := map[string]bool{
		"user_pass": true, "http_pass": true, "admin_mode_password": true, "PASSWORD": true,
		"user_pin": true, "pin": true, "pass": true, "ldap_secret": true, "api_token": true, "tr69_password": true,
		"user_name": false, "language": false, "pin_setting_server": false, "user_host": false,
		"passive": false, "display_name": false, "setting_server": false,
	}
	for name, want := range tests {
		if got := IsSecret(name); got != want {
			t.Errorf("IsSecret(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPhoneLookup(t *testing.T) {
	cfg := mustParse(t, `[[phones]]
mac = "00:04:13:A1:1F:A7"
model = "snomD785"
[[phones]]
mac = "00087b000001"
description = "DECT base"
`)
	for _, spelling := range []string{"000413A11FA7", "00-04-13-a1-1f-a7", "00087B000001"} {
		m, err := phone.ParseMAC(spelling)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := cfg.Phone(m)
		if !ok || p.MAC != m {
			t.Errorf("%s: not found", spelling)
		}
	}
	if p, _ := cfg.Phone(phone.MAC{0x00, 0x04, 0x13, 0xA1, 0x1F, 0xA7}); p.Model != "snomD785" {
		t.Errorf("wrong phone: %+v", p)
	}
	if _, ok := cfg.Phone(phone.MAC{1, 2, 3, 4, 5, 6}); ok {
		t.Error("found a phone that is not configured")
	}
	byHand := &Config{Phones: []Phone{{MAC: phone.MAC{1, 2, 3, 4, 5, 6}}}}
	if _, ok := byHand.Phone(phone.MAC{1, 2, 3, 4, 5, 6}); !ok {
		t.Error("a hand-built Config: phone not found")
	}
}

func TestSettingsForms(t *testing.T) {
	cfg := mustParse(t, `[settings]
language = "English"
int = 5
float = 1.5
on = true
off = false
withperm = { value = "x", perm = "RW" }
permonly = { value = 3, perm = "!" }
indexed = { 1 = "101", 2 = "102" }
indexedperm = { 1 = { value = "101", perm = "RW" }, 3 = true }
[models.snomD785.fkeys]
0 = "line"
1 = { value = "blf sip:102@pbx", label = "Mary", context = 1, perm = "RW" }
`)
	s := cfg.Settings
	want := map[string]Setting{
		"language":    {Value: "English"},
		"int":         {Value: "5"},
		"float":       {Value: "1.5"},
		"on":          {Value: "on"},
		"off":         {Value: "off"},
		"withperm":    {Value: "x", Perm: "RW"},
		"permonly":    {Value: "3", Perm: "!"},
		"indexed":     {Indexed: map[int]IndexedValue{1: {Value: "101"}, 2: {Value: "102"}}},
		"indexedperm": {Indexed: map[int]IndexedValue{1: {Value: "101", Perm: "RW"}, 3: {Value: "on"}}},
	}
	for name, w := range want {
		got := s[name]
		if got.Value != w.Value || got.Perm != w.Perm || len(got.Indexed) != len(w.Indexed) {
			t.Errorf("%s: got %+v, want %+v", name, got, w)
		}
		for i, iv := range w.Indexed {
			if got.Indexed[i] != iv {
				t.Errorf("%s[%d]: got %+v, want %+v", name, i, got.Indexed[i], iv)
			}
		}
	}
	fk := cfg.Models["snomD785"].FKeys
	if fk[0] != (FKey{Value: "line", Context: "active"}) {
		t.Errorf("fkey 0: %+v", fk[0])
	}
	if fk[1] != (FKey{Value: "blf sip:102@pbx", Label: "Mary", Context: "1", Perm: "RW"}) {
		t.Errorf("fkey 1: %+v", fk[1])
	}
}

// TestUnmarshalersWithLibraryDecoder: Setting, FKey and Duration also work
// through toml.Decode, for code that decodes a fragment itself.
func TestUnmarshalersWithLibraryDecoder(t *testing.T) {
	var v struct {
		S Settings `toml:"s"`
		F FKeys    `toml:"f"`
		D Duration `toml:"d"`
	}
	_, err := toml.Decode("d = \"90s\"\n[s]\nuser_name = { 1 = \"101\" }\n[f]\n2 = \"line\"\n", &v)
	if err != nil {
		t.Fatal(err)
	}
	if v.S["user_name"].Indexed[1].Value != "101" || v.F[2].Value != "line" || v.D.Duration != 90*time.Second {
		t.Fatalf("got %+v", v)
	}
	if _, err := toml.Decode("d = 90\n", &v); err == nil {
		t.Fatal("integer duration accepted by the library decoder")
	}
}

func TestEveryPermAccepted(t *testing.T) {
	for _, p := range Perms {
		text := "[provision]\ndefault_perm = \"" + p + "\"\n[settings]\nlanguage = { value = \"English\", perm = \"" + p + "\" }\n" +
			"[models.snomD785.fkeys]\n0 = { value = \"line\", perm = \"" + p + "\" }\n"
		cfg := mustParse(t, text)
		if cfg.Provision.DefaultPerm != p || cfg.Settings["language"].Perm != p || cfg.Models["snomD785"].FKeys[0].Perm != p {
			t.Errorf("perm %q not kept", p)
		}
	}
}

// TestModelNotInModels: a phone's model only selects settings; it need not
// have a [models] table.
func TestModelNotInModels(t *testing.T) {
	cfg := mustParse(t, "[models.snomD785]\n[[phones]]\nmac = \"000413A11FA7\"\nmodel = \"snomD345\"\n")
	if cfg.Phones[0].Model != "snomD345" {
		t.Fatal(cfg.Phones[0])
	}
}

// BenchmarkParse500Phones: a big office's config, as parsed on every reload.
func BenchmarkParse500Phones(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[settings]\nlanguage = \"English\"\n")
	for i := range 500 {
		fmt.Fprintf(&sb, "[[phones]]\nmac = \"00:04:13:00:%02X:%02X\"\nmodel = \"snomD785\"\n[phones.settings]\nuser_name = { 1 = \"%d\" }\nuser_pass = { 1 = \"pw%d\" }\n[phones.fkeys]\n0 = \"line\"\n1 = { value = \"blf sip:1@pbx\", label = \"x\" }\n", i/256, i%256, 100+i, i)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}
