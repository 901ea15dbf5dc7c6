package plan

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
)

const dhcpOn = "[dhcp]\nenabled = true\n"

func mustParse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("unexpected error:\n%v", err)
	}
	return cfg
}

// TestCompileAgainstTheLAN: the DHCP part against the interface's address
// and subnet, located in the file (formerly config.ValidateNetwork).
func TestCompileAgainstTheLAN(t *testing.T) {
	base := dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\nrouter = \"10.0.0.1\"\n[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.50\"\n"
	tests := []struct {
		name  string
		text  string
		iface string
		want  []string
	}{
		{"fits", base, "10.0.0.2/24", nil},
		{"dhcp off", "[dhcp]\npool = \"192.168.9.1-192.168.9.9\"\n", "10.0.0.2/24", nil},
		{"pool outside subnet", base, "10.0.1.2/24", []string{
			"test.toml:3:1: dhcp.pool: the pool 10.0.0.100-10.0.0.199 is outside the interface's subnet 10.0.1.0/24",
			"test.toml:4:1: dhcp.router: router 10.0.0.1 is outside the interface's subnet 10.0.1.0/24",
			"test.toml:7:1: dhcp.reservations[0].ip: address 10.0.0.50 is outside the interface's subnet 10.0.1.0/24",
		}},
		{"pool holds server", base, "10.0.0.150/24", []string{
			"test.toml:3:1: dhcp.pool: the pool 10.0.0.100-10.0.0.199 contains this server's own address 10.0.0.150",
		}},
		{"reservation is server", base, "10.0.0.50/24", []string{
			"test.toml:7:1: dhcp.reservations[0].ip: address 10.0.0.50 is this server's own address",
		}},
		{"pool holds the broadcast address", dhcpOn + "pool = \"10.0.0.200-10.0.0.255\"\n", "10.0.0.2/24", []string{
			"test.toml:3:1: dhcp.pool: the pool 10.0.0.200-10.0.0.255 contains the network or broadcast address of 10.0.0.0/24",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(mustParse(t, tt.text), LAN{Prefix: netip.MustParsePrefix(tt.iface)}, Runtime{})
			wantProblems(t, p, err, tt.want)
		})
	}
}

// wantProblems: the compile's (p, err) is a plan when want is nil, else
// config.Errors, one per want, each starting with it.
func wantProblems(t *testing.T, p *Plan, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		return
	}
	var es config.Errors
	if !errors.As(err, &es) || len(es) != len(want) {
		t.Fatalf("got %v", err)
	}
	for i, w := range want {
		if !strings.HasPrefix(es[i].Error(), w) {
			t.Errorf("problem %d:\n got %s\nwant %s", i, es[i], w)
		}
	}
}

// TestRestartNeeded: a change that needs new sockets is refused whole by a
// reload; any other change is not.
func TestRestartNeeded(t *testing.T) {
	lan := LAN{Interface: "lo", Prefix: netip.MustParsePrefix("127.0.0.1/8")}
	compile := func(text string) *Plan {
		t.Helper()
		p, err := Compile(mustParse(t, text), lan, Runtime{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	base := compile("[http]\nlisten = \":8080\"\n")
	for _, tt := range []struct{ text, want string }{
		{"[http]\nlisten = \":8080\"\n[settings]\nlanguage = \"Deutsch\"\n", ""},
		{"[http]\nlisten = \":9090\"\n", ""}, // the HTTP server's to say (app.TestReloadRefusesSocketChanges)
		{"[http]\nlisten = \":8080\"\n[pnp]\nenabled = false\n", "pnp.enabled"},
		{"[http]\nlisten = \":8080\"\n[dhcp]\nenabled = true\npool = \"127.0.0.100-127.0.0.199\"\n", "dhcp.enabled"},
		{"[http]\nlisten = \":8080\"\n[server]\nstate_dir = \"/srv/other\"\n", "server.interface/state_dir"},
	} {
		err := RestartNeeded(base, compile(tt.text))
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%q: %v, want %q", tt.text, err, tt.want)
		}
	}
}

// TestURLPort: an http.url naming this appliance by address must name the
// port it listens on.
func TestURLPort(t *testing.T) {
	lan := LAN{Prefix: netip.MustParsePrefix("10.0.0.2/24")}
	for _, tt := range []struct{ text, want string }{
		{"[http]\nlisten = \":8080\"\nurl = \"http://10.0.0.2:8080/prov.xml\"\n", ""},
		{"[http]\nlisten = \":8080\"\nurl = \"http://10.0.0.2/prov.xml\"\n", "http.url: names this appliance on port 80"},
		{"[http]\nlisten = \":80\"\nurl = \"http://10.0.0.2/\"\n", ""},
		{"[http]\nlisten = \":8080\"\nurl = \"http://prov.example.com/\"\n", ""}, // a name: perhaps a proxy
	} {
		p, err := Compile(mustParse(t, tt.text), lan, Runtime{})
		p.Close()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%q: %v, want %q", tt.text, err, tt.want)
		}
	}
}

// TestExtraOptionsChecked: [[dhcp.options]] are checked by the compile, so
// check refuses what serve would (dhcp.Prepare is the one place the rule is).
func TestExtraOptionsChecked(t *testing.T) {
	text := dhcpOn + "pool = \"10.0.0.100-10.0.0.199\"\n[[dhcp.options]]\ncode = 66\ntype = \"string\"\nvalue = \"x\"\n"
	p, err := Compile(mustParse(t, text), LAN{Prefix: netip.MustParsePrefix("10.0.0.2/24")}, Runtime{})
	p.Close()
	if err == nil || !strings.Contains(err.Error(), "test.toml:5:1: dhcp.options[0].code: option 66 has its own key") {
		t.Errorf("err = %v, want one at dhcp.options[0].code", err)
	}
}
