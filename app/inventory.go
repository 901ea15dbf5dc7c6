package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/inventory/pgstore"
	"github.com/snomprov/snomprov/metrics"
	"github.com/snomprov/snomprov/plan"
	"github.com/snomprov/snomprov/status"
)

// phoneStore is the inventory the servers record into and the status page,
// metrics and systemd status read: the file store in state_dir, or the
// shared one in PostgreSQL.
type phoneStore interface {
	inventory.Recorder
	status.Inventory
	metrics.PhoneSource
	Run(context.Context) error
}

// inventoryHealth is the shared inventory's line in the status page's
// health box.
func inventoryHealth(st metrics.BufferStats) status.Component {
	c := status.Component{Name: "inventory", OK: st.Connected, Detail: "PostgreSQL"}
	if !st.Connected {
		c.Detail = "PostgreSQL unavailable: phones are served, events are kept until it is back"
	}
	if st.Buffered > 0 {
		c.Detail += fmt.Sprintf("; %d events waiting", st.Buffered)
	}
	if st.Dropped > 0 {
		c.Detail += fmt.Sprintf("; %d dropped (buffer full)", st.Dropped)
	}
	return c
}

// openInventory opens the store the plan's [inventory] names. The
// PostgreSQL store does not connect here: phones are served while the
// database is away.
func openInventory(p *plan.Plan, log *slog.Logger) (phoneStore, error) {
	o, cfg := p.Inventory, p.Config
	if o.URL == "" {
		inv, err := inventory.Open(inventory.Path(cfg.Server.StateDir), inventory.Options{})
		if err != nil {
			return nil, fmt.Errorf("opening the phone inventory in %s: %w", cfg.Server.StateDir, err)
		}
		return inv, nil
	}
	inv, err := pgstore.Open(o, log.With("component", "inventory"))
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL inventory: %w", err)
	}
	log.Info("inventory in PostgreSQL", "site", o.Site, "spool", cfg.Server.StateDir)
	return inv, nil
}
