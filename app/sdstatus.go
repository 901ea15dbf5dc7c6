package app

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
)

// statusInterval is how often the systemd status line is refreshed. A
// variable for tests.
var statusInterval = 30 * time.Second

// statusOrder lists phone states in the order the status line names them:
// done first (the boot path backwards), trouble last.
var statusOrder = func() []inventory.State {
	order := slices.Clone(inventory.BootStates)
	slices.Reverse(order)
	return append(order, inventory.States[len(inventory.BootStates):]...)
}()

// statusLine is the one line `systemctl status snomprov` shows: what runs,
// where the phones are, and a reload that was refused, e.g.
//
//	http :80, pnp answer=snom, dhcp off; 12 phones: 10 up-to-date, 2 failed
func (a *Appliance) statusLine(now time.Time) string {
	a.mu.Lock()
	cfg, reloadErr := a.cfg, a.reloadErr
	a.mu.Unlock()
	var b strings.Builder
	if reloadErr != "" {
		b.WriteString("RELOAD FAILED, previous config still in use: ")
		b.WriteString(reloadErr)
		b.WriteString("; ")
	}
	b.WriteString("http ")
	b.WriteString(cfg.HTTP.Listen)
	if cfg.PnP.Enabled {
		b.WriteString(", pnp answer=")
		b.WriteString(a.servers.pnpAnswer(cfg))
	} else {
		b.WriteString(", pnp off")
	}
	dhcp := "off"
	if cfg.DHCP.Enabled {
		dhcp = dhcpPool(cfg)
		for _, c := range a.servers.healthList() {
			if c.Name == "dhcp" && !c.OK {
				dhcp = "DISABLED: " + oneLine(c.Detail, 120)
			}
		}
	}
	b.WriteString(", dhcp ")
	b.WriteString(dhcp)

	counts := a.inv.CountStates(now, cfg.Status.StaleAfter.Duration)
	total := 0
	for _, n := range counts {
		total += n
	}
	b.WriteString("; ")
	b.WriteString(strconv.Itoa(total))
	b.WriteString(" phones")
	sep := ": "
	for _, st := range statusOrder {
		if n := counts[st]; n > 0 {
			b.WriteString(sep)
			b.WriteString(strconv.Itoa(n))
			b.WriteByte(' ')
			b.WriteString(string(st))
			sep = ", "
		}
	}
	return b.String()
}

// oneLine keeps the first line of s, at most max bytes, saying how much
// was left out.
func oneLine(s string, max int) string {
	first, rest, more := strings.Cut(strings.TrimSpace(s), "\n")
	if len(first) > max {
		first = first[:max] + "…"
	}
	if more {
		first += " (+" + strconv.Itoa(strings.Count(rest, "\n")+1) + " more)"
	}
	return first
}

// statusUpdates refreshes the status line while running under systemd.
func (a *Appliance) statusUpdates(ctx context.Context) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			notify(a.log, "STATUS="+a.statusLine(now))
		}
	}
}

// dhcpPool is [dhcp] pool for the status line and the log; without one
// only [[dhcp.subnets]] are served.
func dhcpPool(cfg *config.Config) string {
	if cfg.DHCP.SubnetsOnly() {
		if n := len(cfg.DHCP.Subnets); n > 1 {
			return strconv.Itoa(n) + " subnets only, not the LAN"
		}
		return "1 subnet only, not the LAN"
	}
	return cfg.DHCP.Pool
}
