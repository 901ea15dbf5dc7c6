package app

import (
	"errors"
	"testing"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/status"
)

func TestStatusLine(t *testing.T) {
	now := time.Now()
	record := func(inv *inventory.Store, macText string, step inventory.Step, ok bool) {
		m, err := phone.ParseMAC(macText)
		if err != nil {
			t.Fatal(err)
		}
		inv.Record(inventory.Observation{MAC: m, Event: inventory.Event{Time: now, Step: step, OK: ok, Detail: "x"}})
	}
	tests := []struct {
		name      string
		setup     func(cfg *config.Config, inv *inventory.Store, srv *servers)
		reloadErr error
		want      string
	}{
		{name: "embedded defaults", want: "http :8080, pnp answer=none, dhcp off; 0 phones"},
		{name: "phones by state", setup: func(cfg *config.Config, inv *inventory.Store, srv *servers) {
			record(inv, "000413000001", inventory.StepPnP, true)
			record(inv, "000413000002", inventory.StepPnP, true)
			record(inv, "000413000003", inventory.StepPhone, false)
			record(inv, "000413000004", inventory.StepGeneral, true)
		}, want: "http :8080, pnp answer=none, dhcp off; 4 phones: 1 settings-fetched, 2 pnp-answered, 1 failed"},
		{name: "dhcp running", setup: func(cfg *config.Config, inv *inventory.Store, srv *servers) {
			cfg.DHCP.Enabled, cfg.DHCP.Pool = true, "10.0.0.100-10.0.0.199"
			cfg.PnP.Enabled = false
			srv.health["dhcp"] = status.Component{Name: "dhcp", OK: true}
		}, want: "http :8080, pnp off, dhcp 10.0.0.100-10.0.0.199; 0 phones"},
		{name: "dhcp for subnets only", setup: func(cfg *config.Config, inv *inventory.Store, srv *servers) {
			cfg.DHCP.Enabled, cfg.DHCP.Subnets = true, []config.DHCPSubnet{{}, {}}
			cfg.PnP.Enabled = false
		}, want: "http :8080, pnp off, dhcp 2 subnets only, not the LAN; 0 phones"},
		{name: "dhcp disabled beside another server", setup: func(cfg *config.Config, inv *inventory.Store, srv *servers) {
			cfg.DHCP.Enabled, cfg.DHCP.Pool = true, "10.0.0.100-10.0.0.199"
			srv.health["dhcp"] = status.Component{Name: "dhcp", OK: false, Detail: "another DHCP server (10.0.0.1) answers on eth0"}
		}, want: "http :8080, pnp answer=none, dhcp DISABLED: another DHCP server (10.0.0.1) answers on eth0; 0 phones"},
		{name: "refused reload", reloadErr: errors.New("/etc/snomprov/snomprov.toml:3:1: http.listen: wrong type\n/etc/snomprov/snomprov.toml:9:1: x: unknown key\nthird"),
			want: "RELOAD FAILED, previous config still in use: /etc/snomprov/snomprov.toml:3:1: http.listen: wrong type (+2 more); http :8080, pnp answer=none, dhcp off; 0 phones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			inv, _ := inventory.Open("", inventory.Options{})
			srv := &servers{health: map[string]status.Component{}}
			if tt.setup != nil {
				tt.setup(cfg, inv, srv)
			}
			a := &Appliance{cfg: cfg, inv: inv, servers: srv}
			if tt.reloadErr != nil {
				a.reloadErr = oneLine(tt.reloadErr.Error(), 200)
			}
			if got := a.statusLine(now); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"short":          "short",
		"a\nb\nc":        "a (+2 more)",
		"  padded \n":    "padded",
		"0123456789abcd": "0123456789…",
	} {
		if got := oneLine(in, 10); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
