package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/snomprov/snomprov/internal/field"
)

// Error is one problem in a config file, located by line and column (both
// 1-based; the column counts bytes) and named by its dotted key, e.g.
// phones[2].mac or models.snomD785.firmware. Array-of-tables indexes are
// 0-based. Line is 0 when the problem has no place in the file (for example
// an unreadable file).
type Error struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

// Error prints FILE:LINE:COL: key: message, leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "(config)"
	}
	b.WriteString(file)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, max(e.Col, 1))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order. Load, Parse,
// Decode and Locate return it (never an empty one) as their error.
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string { return field.JoinLines(es) }

// Unwrap lets errors.As find a single *Error.
func (es Errors) Unwrap() []error { return field.UnwrapAll(es) }

// sorted orders problems by file, then place in the file; problems without
// a place come first. Files keep the order they first appear in (the
// config file, then the phones CSVs it names).
func (es Errors) sorted() Errors {
	order := map[string]int{}
	for _, e := range es {
		if _, ok := order[e.File]; !ok {
			order[e.File] = len(order)
		}
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(order[a.File], order[b.File]), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return es
}

// asError returns es as an error, or nil when there is no problem (never a
// typed nil).
func (es Errors) asError() error {
	if len(es) == 0 {
		return nil
	}
	return es.sorted()
}

// Merge adds the problems of more that are not about a key es already
// reports (or a key inside it): a key that failed to decode holds only its
// default, and what a later stage says of that default is noise.
func (es Errors) Merge(more Errors) Errors {
	out := append(Errors(nil), es...)
	for _, m := range more {
		dup := false
		for _, e := range es {
			if e.Key != "" && (m.Key == e.Key || strings.HasPrefix(m.Key, e.Key+".") || strings.HasPrefix(m.Key, e.Key+"[")) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, m)
		}
	}
	return out.sorted()
}
