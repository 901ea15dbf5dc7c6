package config_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/dhcp"
	"github.com/snomprov/snomprov/httpd"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/pnp"
	"github.com/snomprov/snomprov/provision"
)

func init() {
	config.CheckText = func(name string, data []byte) (*config.Config, error) {
		cfg, err := config.Decode(name, data)
		p, err := plan.CompileDecoded(cfg, err, plan.LAN{}, plan.Runtime{})
		if err != nil {
			return nil, err
		}
		p.Close()
		return cfg, nil
	}
}

// TestExampleDHCPFitsItsNetwork: the DHCP examples of packaging/snomprov.toml
// are consistent with each other and with the advertise example's subnet,
// as serve's compile sees them.
func TestExampleDHCPFitsItsNetwork(t *testing.T) {
	cfg := config.ExamplesConfig(t, func(s string) string {
		return strings.Replace(s, "[dhcp]\n# Serve DHCP with options 66/67 for the phones. Off unless set to true; with\n# another DHCP server on the LAN, leave it off (PnP is enough).\nenabled = false", "[dhcp]\nenabled = true", 1)
	})
	if !cfg.DHCP.Enabled {
		t.Fatal("could not switch the example's DHCP on")
	}
	// The example's certificate and files are not on this machine: only
	// what the DHCP examples say of each other and of the LAN counts here.
	p, err := plan.Compile(cfg, plan.LAN{Interface: cfg.Server.Interface, Prefix: netip.MustParsePrefix("10.0.0.2/24")}, plan.Runtime{})
	p.Close()
	var es config.Errors
	errors.As(err, &es)
	for _, e := range es {
		if strings.HasPrefix(e.Key, "dhcp") || strings.HasPrefix(e.Key, "server") {
			t.Error(e)
		}
	}
}

// TestIssueExampleCompiles: the example of the first issue compiles against
// its LAN (10.0.0.2/24), DHCP included.
func TestIssueExampleCompiles(t *testing.T) {
	cfg := config.IssueExample(t)
	p, err := plan.Compile(cfg, plan.LAN{Prefix: netip.MustParsePrefix("10.0.0.2/24")}, plan.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// TestEffectiveDefaults: what a file that leaves a fixed-choice key out gets,
// as the servers' own Prepare fills it in.
func TestEffectiveDefaults(t *testing.T) {
	cfg, err := config.Parse("test.toml", []byte("[dhcp]\nenabled = true\npool = \"10.0.0.100-10.0.0.199\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(cfg, plan.LAN{Prefix: netip.MustParsePrefix("10.0.0.2/24")}, plan.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := p.HTTP.Options()
	for _, c := range []struct{ key, got, want string }{
		{"pnp.answer", p.PnP.Options().Answer, pnp.AnswerSnom},
		{"http.unknown_phones", h.UnknownPhones, provision.UnknownGeneric},
		{"http.verify_mac", h.VerifyMAC, httpd.VerifyLog},
		{"dhcp.serve", p.DHCP.Options().Serve, dhcp.ServeAll},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.key, c.got, c.want)
		}
	}
}
