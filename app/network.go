package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/plan"
)

// network is where the appliance sits on the LAN, resolved at start.
type network struct {
	iface     string       // LAN interface, e.g. eth0
	prefix    netip.Prefix // its IPv4 address and subnet
	advertise netip.Addr   // the address phones reach us on
}

// waitForNetwork resolves the LAN interface and its address. A Raspberry Pi
// often starts the service before DHCP or the link is up, so a missing
// interface or address is waited for with backoff (and logged) instead of
// being fatal. Only ctx ends the wait.
func waitForNetwork(ctx context.Context, cfg *config.Config, log *slog.Logger) (network, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n, err := resolveNetwork(cfg)
		if err == nil {
			if attempt > 1 {
				log.Info("network is up", "interface", n.iface, "address", n.prefix)
			}
			return n, nil
		}
		log.Warn("waiting for the LAN interface", "err", err, "retry_in", delay)
		// Keep systemd from timing the start out while the Pi's network
		// comes up; READY=1 still waits for every listener.
		notify(log, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=waiting for the LAN interface: %s",
			(delay+30*time.Second).Microseconds(), err))
		select {
		case <-ctx.Done():
			return network{}, fmt.Errorf("stopped while waiting for the LAN interface: %w", err)
		case <-time.After(delay):
		}
		if delay < 10*time.Second {
			delay *= 2
		}
	}
}

func resolveNetwork(cfg *config.Config) (network, error) {
	lan, err := plan.ResolveLAN(cfg)
	if err != nil {
		return network{}, err
	}
	return network{iface: lan.Interface, prefix: lan.Prefix, advertise: lan.Advertise}, nil
}
