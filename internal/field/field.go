// Package field is how a protocol package says which of its options is
// wrong without knowing the configuration file: an error names the option
// by its key relative to the package's own section ("pool",
// "reservations[2].ip"), and the compile step (package plan) adds the
// section and the file, line and column. It is the one rule for who
// prefixes a configuration error: the package names the key, plan names
// the place, nobody else adds a prefix.
package field

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem with one option.
type Error struct {
	Key string // relative to the section, e.g. "pool"; empty: the section as a whole
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Errorf returns an *Error for key.
func Errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Errors collects every problem of one prepare call, in the order found.
type Errors []*Error

// Add records a problem.
func (es *Errors) Add(key, format string, args ...any) {
	*es = append(*es, Errorf(key, format, args...))
}

// Err returns es as an error, or nil when empty (never a typed nil).
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es Errors) Error() string { return JoinLines(es) }

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error { return UnwrapAll(es) }

// JoinLines prints a list of errors one per line: the Error method of
// this package's Errors and of config.Errors.
func JoinLines[E error](es []E) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// UnwrapAll is the Unwrap method of a list of errors, for errors.As.
func UnwrapAll[E error](es []E) []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Prefix returns the key path child under parent, as config writes it:
// Prefix("reservations[2]", "ip") = "reservations[2].ip".
func Prefix(parent, child string) string {
	switch {
	case parent == "":
		return child
	case child == "":
		return parent
	}
	return parent + "." + child
}

// List returns every *Error in err (an *Error, Errors, or anything that
// wraps them), or nil when err holds none.
func List(err error) []*Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}

// NotOneOf is the message for a value outside a fixed set, the same from
// every package: `"x" is not allowed; use one of "a", "b"`.
func NotOneOf(v string, allowed ...string) string {
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = strconv.Quote(a)
	}
	return fmt.Sprintf("%q is not allowed; use one of %s", v, strings.Join(q, ", "))
}
