package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/snomprov/snomprov/dhcp"
)

func init() {
	register("leases", "list the DHCP leases", cmdLeases)
}

func cmdLeases(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("leases", "[-config FILE]", stderr)
	path := configFlag(fs, true)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	leases, err := dhcp.LoadLeases(cfg.Server.StateDir)
	if err != nil {
		return err
	}
	if len(leases) == 0 {
		fmt.Fprintln(stdout, "no leases")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tMAC\tHOSTNAME\tSTATE\tEXPIRES")
	for _, l := range leases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.IP, l.MAC.Colon(), dash(l.Hostname), l.State, expires(now, l.Expiry))
	}
	return tw.Flush()
}

func expires(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if t.Before(now) {
		return "expired " + now.Sub(t).Round(time.Second).String() + " ago"
	}
	return "in " + t.Sub(now).Round(time.Second).String()
}
