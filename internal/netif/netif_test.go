package netif

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
)

const routeHeader = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"

func TestParseDefaultRoute(t *testing.T) {
	tests := []struct {
		name    string
		table   string
		want    string
		wantErr error
	}{
		{"one default", "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "eth0", nil},
		{"lowest metric wins", "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth0", nil},
		{"down route ignored", "eth1\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\nend0\t00000000\t010200C0\t0003\t0\t0\t5\t00000000\t0\t0\t0\n", "end0", nil},
		{"only subnet routes", "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "", ErrNoDefaultRoute},
		{"empty table", "", "", ErrNoDefaultRoute},
		{"garbage lines", "eth0 x y\n\n\t\n", "", ErrNoDefaultRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDefaultRoute(strings.NewReader(routeHeader + tt.table))
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFirstIPv4(t *testing.T) {
	v6 := &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}
	v4 := &net.IPNet{IP: net.ParseIP("10.0.0.2").To4(), Mask: net.CIDRMask(24, 32)}
	v4in16 := &net.IPNet{IP: net.ParseIP("192.168.1.7"), Mask: net.CIDRMask(120, 128)}
	tests := []struct {
		name  string
		addrs []net.Addr
		want  string
	}{
		{"v6 then v4", []net.Addr{v6, v4}, "10.0.0.2/24"},
		{"16-byte form", []net.Addr{v4in16}, "192.168.1.7/24"},
		{"only v6", []net.Addr{v6}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		got, ok := firstIPv4(tt.addrs)
		if tt.want == "" {
			if ok {
				t.Errorf("%s: got %v, want none", tt.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("%s: got %v %v, want %s", tt.name, got, ok, tt.want)
		}
	}
}

func TestIPv4Loopback(t *testing.T) {
	got, err := IPv4("lo")
	if err != nil {
		t.Fatal(err)
	}
	if got != netip.MustParsePrefix("127.0.0.1/8") {
		t.Fatalf("lo: got %v", got)
	}
}

func TestIPv4MissingInterface(t *testing.T) {
	_, err := IPv4("nosuchif0")
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "nosuchif0") {
		t.Fatalf("got %v, want ErrNoInterface naming the interface", err)
	}
}

// TestOnSimulatedLAN checks both functions inside namespaces: an interface
// without an address, one with, and the default route appearing.
func TestOnSimulatedLAN(t *testing.T) {
	lan := lantest.New(t, "10.77.3.0/24")
	srv := lan.AddHost("srv", lantest.HostOptions{Addr: "10.77.3.2/24"})
	client := lan.AddHost("cli", lantest.HostOptions{})

	err := client.Do(func() error {
		_, err := IPv4("eth0")
		return err
	})
	if !errors.Is(err, ErrNoIPv4) || !strings.Contains(err.Error(), "interface eth0 has no IPv4 address yet") {
		t.Fatalf("client without address: got %v", err)
	}

	var got netip.Prefix
	if err := srv.Do(func() (err error) { got, err = IPv4("eth0"); return err }); err != nil {
		t.Fatal(err)
	}
	if got != netip.MustParsePrefix("10.77.3.2/24") {
		t.Fatalf("server address: got %v", got)
	}

	err = srv.Do(func() error { _, err := DefaultRouteInterface(); return err })
	if !errors.Is(err, ErrNoDefaultRoute) {
		t.Fatalf("before a default route: got %v, want ErrNoDefaultRoute", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := srv.Run(ctx, "ip", "route", "add", "default", "via", "10.77.3.1", "dev", "eth0"); err != nil {
		t.Fatalf("adding a default route: %v\n%s", err, out)
	}
	var name string
	if err := srv.Do(func() (err error) { name, err = DefaultRouteInterface(); return err }); err != nil {
		t.Fatal(err)
	}
	if name != "eth0" {
		t.Fatalf("default route interface: got %q, want eth0", name)
	}
}
