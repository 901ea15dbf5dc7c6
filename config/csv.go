package config

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/snomprov/snomprov/phone"
)

// Phones from a spreadsheet: phones_csv names CSV files, one phone a row,
// as a PBX exports them or a spreadsheet saves them (comma, semicolon or
// tab separated; a UTF-8 byte-order mark is skipped). The first row names
// the columns:
//
//	mac                      required
//	model, description,      as in [[phones]]
//	group, firmware,
//	firmware_uxm
//	line<N>_<key>            line N's account, password, name, auth_user,
//	                         host, outbound or mailbox (N is its identity)
//	ip, firmware_seen,       written by `snomprov phones --csv` for
//	state, last_seen         reference; ignored when read
//	any other name           a setting of that name (an empty cell sets nothing)
//
// Rows become Phones after [[phones]]; problems in them are reported as
// FILE:LINE:COL: column: message, in the CSV.

// CSVColumns are the named columns of a phones CSV, in the order `snomprov
// phones --csv` writes them.
var CSVColumns = []string{"mac", "model", "description", "group", "firmware", "firmware_uxm"}

// CSVInfoColumns are written by `snomprov phones --csv` and ignored on read.
var CSVInfoColumns = []string{"ip", "firmware_seen", "state", "last_seen"}

// CSVLineKeys are the line<N>_ keys of a phones CSV, as in Line's TOML keys.
var CSVLineKeys = []string{"account", "password", "name", "auth_user", "host", "outbound", "mailbox"}

// Bounds of one phones CSV: bad input costs bounded memory.
const (
	maxCSVBytes = 16 << 20
	maxCSVRows  = 20000
	maxCSVLine  = 64 // identities per phone a column may name
)

// CSVRow is one phone read from a CSV, with where each of its keys is
// (key paths relative to the phone, as "lines[0].account").
type CSVRow struct {
	Phone Phone
	Pos   map[string]CSVPos
}

// CSVPos is a cell: its line and byte column (1-based) and column name.
type CSVPos struct {
	Line, Col int
	Column    string
}

type csvColumn struct {
	name    string // as in the header, trimmed
	kind    string // mac, model, description, group, firmware, firmware_uxm, line, info, setting
	line    int    // for kind line
	lineKey string
}

// ParsePhonesCSV reads the phones of one CSV file's text; name is used in
// errors. Every problem found is returned; rows with problems are still
// returned as far as they read, except those without a good MAC.
func ParsePhonesCSV(name string, data []byte) ([]CSVRow, Errors) {
	var errs Errors
	fail := func(line, col int, column, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: line, Col: col, Key: column, Msg: fmt.Sprintf(format, args...)})
	}
	if len(data) > maxCSVBytes {
		fail(0, 0, "", "the file is larger than %d MiB; split it into several phones_csv files", maxCSVBytes>>20)
		return nil, errs
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = separator(data)
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			fail(0, 0, "", "the file is empty; the first row names the columns, e.g. mac,model,description,line1_account,line1_password")
		} else {
			csvFail(fail, err)
		}
		return nil, errs
	}
	cols := make([]csvColumn, len(header))
	seen := map[string]int{}
	hasMAC := false
	for i, h := range header {
		line, col := r.FieldPos(i)
		c := classify(strings.TrimSpace(h))
		cols[i] = c
		switch {
		case c.name == "":
			fail(line, col, "", "column %d has no name; name it, or remove the column", i+1)
			continue
		case c.kind == "":
			fail(line, col, c.name, "%s", c.why())
			continue
		}
		if j, dup := seen[c.name]; dup {
			fail(line, col, c.name, "column %q is also column %d; keep one", c.name, j+1)
			cols[i].kind = "info"
			continue
		}
		seen[c.name] = i
		hasMAC = hasMAC || c.kind == "mac"
	}
	if !hasMAC {
		fail(1, 1, "", "no mac column; the first row names the columns and one of them must be mac")
		return nil, errs
	}
	var rows []CSVRow
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			csvFail(fail, err)
			break
		}
		if len(rows) == maxCSVRows {
			line, _ := r.FieldPos(0)
			fail(line, 1, "", "more than %d phones in one file; split it into several phones_csv files", maxCSVRows)
			break
		}
		if blank(rec) {
			continue
		}
		row := CSVRow{Pos: map[string]CSVPos{}}
		p := &row.Phone
		lines := map[int]*Line{}
		linePos := map[int]CSVPos{}
		for i, cell := range rec {
			line, col := r.FieldPos(i)
			v := strings.TrimSpace(cell)
			if i >= len(cols) {
				if v != "" {
					fail(line, col, "", "this row has more cells (%d) than the header has columns (%d)", len(rec), len(cols))
				}
				continue
			}
			c := cols[i]
			at := CSVPos{Line: line, Col: col, Column: c.name}
			if v == "" && c.kind != "mac" {
				continue
			}
			switch c.kind {
			case "mac":
				row.Pos[""], row.Pos["mac"] = at, at
				if v == "" {
					fail(line, col, c.name, `a phone needs a mac, like 00:04:13:A1:1F:A7`)
					continue
				}
				m, err := phone.ParseMAC(v)
				switch {
				case err != nil:
					fail(line, col, c.name, "%s", textError(macType, v, err))
					continue
				case m.IsZero():
					fail(line, col, c.name, `%s is no phone's MAC; write the phone's, like 00:04:13:A1:1F:A7`, v)
					continue
				}
				p.MAC = m
			case "model":
				p.Model, row.Pos["model"] = v, at
			case "description":
				p.Description, row.Pos["description"] = v, at
			case "group":
				p.Group, row.Pos["group"] = v, at
			case "firmware":
				p.Firmware, row.Pos["firmware"] = v, at
			case "firmware_uxm":
				p.FirmwareUXM, row.Pos["firmware_uxm"] = v, at
			case "line":
				l := lines[c.line]
				if l == nil {
					l = &Line{Identity: c.line}
					lines[c.line] = l
					linePos[c.line] = at
				}
				l.set(c.lineKey, v)
				row.Pos[fmt.Sprintf("\x00%d.%s", c.line, c.lineKey)] = at
			case "setting":
				if p.Settings == nil {
					p.Settings = Settings{}
				}
				p.Settings[c.name] = Setting{Value: v}
				row.Pos["settings."+joinKey("", c.name)] = at
			}
		}
		if _, ok := row.Pos["mac"]; !ok { // a short row
			line, _ := r.FieldPos(0)
			fail(line, 1, "mac", "this row has no mac cell")
		}
		if p.MAC.IsZero() {
			continue // reported; a phone without its MAC is nobody
		}
		ids := make([]int, 0, len(lines))
		for id := range lines {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for k, id := range ids {
			p.Lines = append(p.Lines, *lines[id])
			at := "lines[" + strconv.Itoa(k) + "]"
			row.Pos[at] = linePos[id]
			for _, key := range CSVLineKeys {
				if pos, ok := row.Pos[fmt.Sprintf("\x00%d.%s", id, key)]; ok {
					delete(row.Pos, fmt.Sprintf("\x00%d.%s", id, key))
					row.Pos[at+"."+key] = pos
				}
			}
		}
		rows = append(rows, row)
	}
	return rows, errs
}

func csvFail(fail func(int, int, string, string, ...any), err error) {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		fail(pe.Line, pe.Column, "", "%v; a cell holding the separator or a quote must be quoted, with quotes inside doubled (\"\")", pe.Err)
		return
	}
	fail(0, 0, "", "%v", err)
}

// separator is what a spreadsheet used: the one of ; , and tab that the
// header row holds most of (Excel in most of Europe writes ;).
func separator(data []byte) rune {
	var first []byte
	for len(data) > 0 {
		first, data, _ = bytes.Cut(data, []byte("\n"))
		if t := bytes.TrimSpace(first); len(t) > 0 && t[0] != '#' {
			break
		}
	}
	best, n := ',', bytes.Count(first, []byte(","))
	for _, c := range []rune{';', '\t'} {
		if m := bytes.Count(first, []byte(string(c))); m > n {
			best, n = c, m
		}
	}
	return best
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

func classify(h string) csvColumn {
	c := csvColumn{name: h}
	lower := strings.ToLower(h)
	switch {
	case h == "":
	case slices.Contains(CSVColumns, lower):
		c.name, c.kind = lower, lower
	case slices.Contains(CSVInfoColumns, lower):
		c.name, c.kind = lower, "info"
	case strings.HasPrefix(lower, "line") && strings.Contains(lower, "_"):
		num, key, _ := strings.Cut(lower[len("line"):], "_")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > maxCSVLine || !slices.Contains(CSVLineKeys, key) || strconv.Itoa(n) != num {
			break
		}
		c.name, c.kind, c.line, c.lineKey = lower, "line", n, key
	case settingName.MatchString(h):
		c.kind = "setting"
	}
	return c
}

func (c csvColumn) why() string {
	if strings.HasPrefix(strings.ToLower(c.name), "line") && strings.Contains(c.name, "_") {
		return fmt.Sprintf("%q is not a line column: write line<N>_<key> with N from 1 to %d and key one of %s", c.name, maxCSVLine, strings.Join(CSVLineKeys, ", "))
	}
	return fmt.Sprintf("%q is not a column name; a column is mac, model, description, group, firmware, firmware_uxm, line<N>_<%s> or a setting name (letters, digits and _)", c.name, strings.Join(CSVLineKeys, "|"))
}

func (l *Line) set(key, v string) {
	switch key {
	case "account":
		l.Account = v
	case "password":
		l.Password = v
	case "name":
		l.Name = v
	case "auth_user":
		l.AuthUser = v
	case "host":
		l.Host = v
	case "outbound":
		l.Outbound = v
	case "mailbox":
		l.Mailbox = v
	}
}

// phonesCSV reads every file of phones_csv and appends its phones to
// cfg.Phones, recording where each key is so later problems are reported
// in the CSV.
func (d *decoder) phonesCSV(cfg *Config, baseDir string) {
	for i, name := range cfg.PhonesCSV {
		key := indexKey("phones_csv", i)
		if name == "" {
			d.fail(key, `an empty file name; write phones_csv = ["phones.csv"]`)
			continue
		}
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		data, err := readLimited(path, maxCSVBytes)
		if err != nil {
			d.fail(key, "cannot read the phones CSV: %v", err)
			continue
		}
		rows, errs := ParsePhonesCSV(path, data)
		d.errs = append(d.errs, errs...)
		for _, row := range rows {
			at := indexKey("phones", len(cfg.Phones))
			cfg.Phones = append(cfg.Phones, row.Phone)
			for k, p := range row.Pos {
				full := at
				if k != "" {
					full = at + "." + k
				}
				d.pos[full] = position{Line: p.Line, Col: p.Col, File: path, Name: p.Column}
			}
		}
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	return data, nil
}
