package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/snomprov/snomprov/phone"
)

func init() {
	register("models", "print the catalogue of Snom models: identities, function keys, modules, containers, firmware", cmdModels)
}

func cmdModels(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("models", "[--json]", stderr)
	asJSON := fs.Bool("json", false, "print JSON (every column, with each row's source) instead of a table")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	models := phone.Models()
	if *asJSON {
		type row struct {
			phone.Model
			// ModuleKeys: per module type, the idx range of the module at
			// each position in the chain ("24-41").
			ModuleKeys map[string][]string `json:"module_keys,omitempty"`
		}
		rows := make([]row, len(models))
		for i, m := range models {
			rows[i].Model = m
			for t, rs := range m.ModuleRanges() {
				if rows[i].ModuleKeys == nil {
					rows[i].ModuleKeys = map[string][]string{}
				}
				for _, r := range rs {
					rows[i].ModuleKeys[t] = append(rows[i].ModuleKeys[t], fmt.Sprintf("%d-%d", r.First, r.Last))
				}
			}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tFAMILY\tIDENTITIES\tKEYS\tMODULES\tFIRMWARE\tCONTAINERS")
	for _, m := range models {
		family := string(m.Family)
		if m.Legacy {
			family += " (legacy)"
		}
		ids := strconv.Itoa(m.Identities)
		if m.Identities == 0 && m.Family != phone.FamilyModule {
			ids = "?"
		}
		mods := "-"
		if len(m.Modules) > 0 {
			mods = fmt.Sprintf("%s (max %d)", strings.Join(m.Modules, "/"), m.MaxModules)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Type, family, ids, m.Keys, mods, m.Firmware, containers(m))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nSources and notes per row: snomprov models --json, or docs/models.md.")
	return nil
}

// containers shortens the list for the table: "all", "all but X" or the list.
func containers(m phone.Model) string {
	var missing []string
	for _, c := range phone.Containers {
		if !m.Reads(c) {
			missing = append(missing, c)
		}
	}
	switch {
	case len(missing) == 0:
		return "all"
	case len(missing) <= 3:
		return "all but " + strings.Join(missing, " ")
	}
	return strings.Join(m.Containers, " ")
}
