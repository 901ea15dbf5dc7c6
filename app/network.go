package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/plan"
)

// waitForNetwork resolves the LAN (plan.ResolveLAN): the interface, its
// address and subnet, and the address phones reach us on. A Raspberry Pi
// often starts the service before DHCP or the link is up, so a missing
// interface or address is waited for with backoff (and logged) instead of
// being fatal. Only ctx ends the wait.
func waitForNetwork(ctx context.Context, cfg *config.Config, log *slog.Logger) (plan.LAN, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n, err := plan.ResolveLAN(cfg)
		if err == nil {
			if attempt > 1 {
				log.Info("network is up", "interface", n.Interface, "address", n.Prefix)
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
			return plan.LAN{}, fmt.Errorf("stopped while waiting for the LAN interface: %w", err)
		case <-time.After(delay):
		}
		if delay < 10*time.Second {
			delay *= 2
		}
	}
}
