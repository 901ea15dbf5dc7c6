package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/inventory/pgstore"
	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/plan"
)

func init() {
	register("phones", "list the phones seen by DHCP, PnP and HTTP, with each one's state", cmdPhones)
	register("phone", "show one phone's provisioning timeline", cmdPhone)
}

// loadInventory reads the phones: the snapshot in state_dir, or with
// [inventory] url the shared inventory of every site (site names one; own
// takes the configured [inventory] site instead).
func loadInventory(path, site string, own bool) ([]inventory.Phone, time.Duration, error) {
	list, cfg, err := loadInventoryConfig(path, site, own)
	if err != nil {
		return nil, 0, err
	}
	return list, cfg.Status.StaleAfter.Duration, nil
}

// loadInventoryConfig is loadInventory that also returns the config.
func loadInventoryConfig(path, site string, own bool) ([]inventory.Phone, *config.Config, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Inventory.URL == "" {
		list, err := inventory.Load(inventory.Path(cfg.Server.StateDir))
		return list, cfg, err
	}
	if _, err := plan.Inventory(cfg); err != nil {
		return nil, nil, configError{err}
	}
	if own {
		site = cfg.Inventory.Site
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pool, err := pgstore.Connect(ctx, cfg.Inventory.URL)
	if err != nil {
		return nil, nil, err
	}
	defer pool.Close()
	list, err := pgstore.Query(ctx, pool, pgstore.Filter{Site: site}, 50)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the PostgreSQL inventory: %s", pgstore.MaskURL(err.Error(), cfg.Inventory.URL))
	}
	return list, cfg, nil
}

// writePhonesCSV writes the phones seen that the config does not list yet,
// in the columns of a phones CSV (config/csv.go): fill in the lines, save,
// name the file in phones_csv and the rows read back as they are. The
// reference columns (ip, firmware_seen, state, last_seen) are ignored
// when read.
func writePhonesCSV(w io.Writer, list []inventory.Phone, cfg *config.Config, now time.Time) error {
	cw := csv.NewWriter(w)
	header := []string{"mac", "model", "description", "line1_account", "line1_password", "line1_name"}
	header = append(header, config.CSVInfoColumns...)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, p := range list {
		if _, listed := cfg.Phone(p.MAC); listed {
			continue
		}
		st, _ := p.State(now, cfg.Status.StaleAfter.Duration)
		last := ""
		if !p.LastSeen.IsZero() {
			last = p.LastSeen.UTC().Format(time.RFC3339)
		}
		if err := cw.Write([]string{p.MAC.Colon(), p.Model, "", "", "", "", p.IP, p.Firmware, string(st), last}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func cmdPhones(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("phones", "[-config FILE] [--state S] [--site S] [--json | --csv]", stderr)
	path := configFlag(fs, true)
	site := fs.String("site", "", "only phones of `SITE` (a shared inventory; default every site)")
	state := fs.String("state", "", "only phones in `STATE` (seen, leased, pnp-answered, settings-fetched, firmware-fetched, up-to-date, failed, stale, firmware-loop)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	asCSV := fs.Bool("csv", false, "print the phones seen that the config does not list, as a phones CSV to fill in and name in phones_csv")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var only inventory.State
	if *state != "" {
		st, err := inventory.ParseState(*state)
		if err != nil {
			return usageError{err.Error()}
		}
		only = st
	}
	if *asJSON && *asCSV {
		return usageError{"give --json or --csv, not both"}
	}
	list, cfg, err := loadInventoryConfig(*path, *site, false)
	if err != nil {
		return err
	}
	stale := cfg.Status.StaleAfter.Duration
	now := time.Now()
	if *asCSV {
		var keep []inventory.Phone
		for _, p := range list {
			if st, _ := p.State(now, stale); only == "" || st == only {
				keep = append(keep, p)
			}
		}
		return writePhonesCSV(stdout, keep, cfg, now)
	}
	type row struct {
		inventory.Phone
		State  inventory.State `json:"state"`
		Reason string          `json:"reason,omitempty"`
	}
	var rows []row
	for _, p := range list {
		st, why := p.State(now, stale)
		if only != "" && st != only {
			continue
		}
		rows = append(rows, row{Phone: p, State: st, Reason: why})
	}
	if *asJSON {
		if rows == nil {
			rows = []row{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no phones seen yet")
		return nil
	}
	sites := false
	for _, r := range rows {
		sites = sites || r.Site != ""
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if sites {
		fmt.Fprint(tw, "SITE\t")
	}
	fmt.Fprintln(tw, "MAC\tMODEL\tFIRMWARE\tIP\tSTATE\tDHCP\tPNP\tSETTINGS\tFIRMWARE FILE\tLAST SEEN\tREASON")
	for _, r := range rows {
		if sites {
			fmt.Fprintf(tw, "%s\t", r.Site)
		}
		settings := stepCell(r.Steps, inventory.StepPhone)
		if settings == "-" {
			settings = stepCell(r.Steps, inventory.StepGeneral)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.MAC, dash(r.Model), dash(r.Firmware), dash(r.IP), r.State,
			stepCell(r.Steps, inventory.StepDHCP), stepCell(r.Steps, inventory.StepPnP), settings,
			stepCell(r.Steps, inventory.StepFirmwareFile), ago(now, r.LastSeen), r.Reason)
	}
	return tw.Flush()
}

func cmdPhone(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("phone", "[-config FILE] [--site S] MAC", stderr)
	path := configFlag(fs, true)
	site := fs.String("site", "", "the phone as `SITE` saw it (a shared inventory; default the site that saw it last)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"expected exactly one MAC address"}
	}
	m, err := phone.ParseMAC(rest[0])
	if err != nil {
		return usageError{err.Error()}
	}
	list, stale, err := loadInventory(*path, *site, false)
	if err != nil {
		return err
	}
	var found []inventory.Phone
	for _, p := range list {
		if p.MAC == m {
			found = append(found, p)
		}
	}
	// Seen at several sites: the most recent one.
	slices.SortStableFunc(found, func(a, b inventory.Phone) int { return b.LastSeen.Compare(a.LastSeen) })
	for _, p := range found {
		if p.Site != "" {
			fmt.Fprintf(stdout, "site %s  ", p.Site)
		}
		st, why := p.State(time.Now(), stale)
		fmt.Fprintf(stdout, "%s  model %s  firmware %s  ip %s  hostname %s\n", p.MAC, dash(p.Model), dash(p.Firmware), dash(p.IP), dash(p.Hostname))
		fmt.Fprintf(stdout, "state: %s", st)
		if why != "" {
			fmt.Fprintf(stdout, " (%s)", why)
		}
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nTIME\tSTEP\tRESULT\tDETAIL")
		for _, e := range p.Events {
			res := "ok"
			if !e.OK {
				res = "FAILED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Step, res, e.Detail)
		}
		return tw.Flush()
	}
	return fmt.Errorf("phone %s has not been seen (snomprov phones lists the ones that have)", m)
}

func stepCell(steps map[inventory.Step]inventory.StepResult, s inventory.Step) string {
	r, ok := steps[s]
	if !ok {
		return "-"
	}
	if r.OK {
		return "ok"
	}
	return "FAILED"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
