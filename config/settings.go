package config

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// subKeyError is returned by the UnmarshalTOML methods for a problem inside
// the value (say the perm of idx 1), so the decoder can point at that key.
type subKeyError struct {
	key []string // segments below the value's own key
	msg string
}

func (e *subKeyError) Error() string {
	if len(e.key) == 0 {
		return e.msg
	}
	return strings.Join(e.key, ".") + ": " + e.msg
}

func subErr(key []string, format string, args ...any) error {
	return &subKeyError{key: key, msg: fmt.Sprintf(format, args...)}
}

// Perms are the perm flags a setting or function key may carry
// (snom-provisioning.md §4.1): R, & and " " make a setting read-only for the
// user; RW and $ let the user change it until the next provisioning
// overwrites it; ! writes it only while the user has not changed it; V
// (firmware 10.1.79.0+) keeps it out of flash. The phone also reads an empty
// perm as RW, but here an empty perm means "not set, use
// [provision] default_perm", so it is written "RW".
var Perms = []string{"R", "RW", "!", "&", "$", " ", "V"}

// ValidPerm reports whether p is one of Perms.
func ValidPerm(p string) bool { return slices.Contains(Perms, p) }

const permHelp = `use one of "R" (read-only), "RW" (user may change it until the next provisioning), "!" (written only while the user has not changed it), "&", "$", " " or "V"`

// permProblem explains why p is not a valid perm.
func permProblem(p string) string {
	if p == "" {
		return `an empty perm would mean "use default_perm"; write "RW" for a setting the user may change`
	}
	return fmt.Sprintf("unknown perm %q; %s", p, permHelp)
}

// UnmarshalTOML accepts every form documented on Setting.
func (s *Setting) UnmarshalTOML(v any) error {
	*s = Setting{}
	table, ok := v.(map[string]any)
	if !ok {
		val, err := scalarText(v)
		if err != nil {
			return subErr(nil, "%v", err)
		}
		s.Value = val
		return nil
	}
	if len(table) == 0 {
		return subErr(nil, `empty table; write name = "value", { value = "x", perm = "RW" } or { 1 = "x" }`)
	}
	_, hasValue := table["value"]
	_, hasPerm := table["perm"]
	if hasValue || hasPerm {
		val, perm, err := valuePerm(table, nil)
		if err != nil {
			return err
		}
		s.Value, s.Perm = val, perm
		return nil
	}
	s.Indexed = make(map[int]IndexedValue, len(table))
	for _, k := range sortedKeys(table) {
		idx, err := parseIndex(k)
		if err != nil {
			return subErr([]string{k}, `%v; an indexed setting is written { 1 = "x", 2 = "y" }, a setting with its own perm { value = "x", perm = "RW" }`, err)
		}
		var iv IndexedValue
		if sub, ok := table[k].(map[string]any); ok {
			iv.Value, iv.Perm, err = valuePerm(sub, []string{k})
		} else {
			iv.Value, err = scalarText(table[k])
			if err != nil {
				err = subErr([]string{k}, "%v", err)
			}
		}
		if err != nil {
			return err
		}
		s.Indexed[idx] = iv
	}
	return nil
}

// valuePerm reads { value = ..., perm = ... }; value is required.
func valuePerm(table map[string]any, at []string) (value, perm string, err error) {
	for _, k := range sortedKeys(table) {
		if k != "value" && k != "perm" {
			return "", "", subErr(append(at, k), `unknown key in a setting; a setting table holds only "value" and "perm"`)
		}
	}
	raw, ok := table["value"]
	if !ok {
		return "", "", subErr(at, `missing "value"; write { value = "x", perm = "RW" }`)
	}
	if value, err = scalarText(raw); err != nil {
		return "", "", subErr(append(at, "value"), "%v", err)
	}
	if raw, ok := table["perm"]; ok {
		p, isString := raw.(string)
		if !isString {
			return "", "", subErr(append(at, "perm"), "perm must be a string; %s", permHelp)
		}
		if !ValidPerm(p) {
			return "", "", subErr(append(at, "perm"), "%s", permProblem(p))
		}
		perm = p
	}
	return value, perm, nil
}

// scalarText renders a TOML scalar the way the phone wants it in XML.
func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", fmt.Errorf("%v is not a value a phone understands; write a number or a string", v)
		}
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		if v {
			return "on", nil
		}
		return "off", nil
	default:
		return "", fmt.Errorf("a value must be a string, number or boolean, not %s", tomlTypeName(v))
	}
}

// parseIndex reads a table key used as an idx: a decimal integer ≥ 0.
func parseIndex(k string) (int, error) {
	n, err := strconv.Atoi(k)
	if err != nil || n < 0 || k != strconv.Itoa(n) {
		return 0, fmt.Errorf("index %q is not an integer ≥ 0", k)
	}
	return n, nil
}

// UnmarshalTOML reads a table of 0-based function key indexes (TOML table
// keys are strings, and the TOML library decodes no int-keyed maps itself).
func (fk *FKeys) UnmarshalTOML(v any) error {
	table, ok := v.(map[string]any)
	if !ok {
		return subErr(nil, `function keys must be a table like { 0 = "line", 1 = "blf sip:102@pbx" }, not %s`, tomlTypeName(v))
	}
	out := make(FKeys, len(table))
	for _, k := range sortedKeys(table) {
		idx, err := parseIndex(k)
		if err != nil {
			return subErr([]string{k}, "function key %v; keys are numbered from 0", err)
		}
		var f FKey
		if err := f.UnmarshalTOML(table[k]); err != nil {
			var sub *subKeyError
			if errors.As(err, &sub) {
				return &subKeyError{key: append([]string{k}, sub.key...), msg: sub.msg}
			}
			return subErr([]string{k}, "%v", err)
		}
		out[idx] = f
	}
	*fk = out
	return nil
}

// UnmarshalTOML accepts "blf sip:102@pbx" or
// { value = "...", label = "...", context = "1", perm = "RW" } with any of
// short_label, lp, clp, default_text and xml.
func (f *FKey) UnmarshalTOML(v any) error {
	*f = FKey{Context: "active"}
	switch v := v.(type) {
	case string:
		f.Value = v
		return nil
	case map[string]any:
		attrs := map[string]*string{
			"value": &f.Value, "label": &f.Label, "context": &f.Context, "perm": &f.Perm,
			"short_label": &f.ShortLabel, "lp": &f.LP, "default_text": &f.DefaultText, "xml": &f.XML,
		}
		for _, k := range sortedKeys(v) {
			dst, known := attrs[k]
			switch {
			case k == "clp":
				switch b := v[k].(type) {
				case bool:
					f.CLP = map[bool]string{true: "1", false: "0"}[b]
					continue
				case string:
					if b == "0" || b == "1" {
						f.CLP = b
						continue
					}
				}
				return subErr([]string{k}, `clp is true or false ("1" or "0")`)
			case !known:
				return subErr([]string{k}, `unknown key in a function key; use value, label, context, perm, short_label, lp, clp, default_text and xml`)
			}
			text, err := scalarText(v[k])
			if _, isBool := v[k].(bool); err != nil || isBool {
				return subErr([]string{k}, "must be a string")
			}
			*dst = text
		}
		_, hasValue := v["value"]
		_, hasXML := v["xml"]
		if !hasValue && !hasXML {
			return subErr(nil, `missing "value"; write { value = "blf sip:102@pbx", label = "Mary" }, or xml = '<general .../>' for a key defined by XML`)
		}
		if f.LP != "" && f.CLP == "" {
			f.CLP = "1" // Snom: a long press that is not the default needs clp="1"
		}
		if _, set := v["perm"]; set && !ValidPerm(f.Perm) {
			return subErr([]string{"perm"}, "%s", permProblem(f.Perm))
		}
		if f.Context == "" {
			f.Context = "active"
		}
		return nil
	default:
		return subErr(nil, `a function key must be a string like "blf sip:102@pbx" or a table { value = "...", label = "..." }, not %s`, tomlTypeName(v))
	}
}

// UnmarshalTOML accepts only strings: a bare integer would otherwise be read
// as nanoseconds.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		dur, err := time.ParseDuration(v)
		if err != nil {
			return subErr(nil, `%q is not a duration; write it as a string like "12h", "90m" or "30s"`, v)
		}
		d.Duration = dur
		return nil
	case int64, float64:
		return subErr(nil, `a bare number is not a duration (it would mean nanoseconds); write it as a string like "12h"`)
	default:
		return subErr(nil, `must be a duration written as a string like "12h", not %s`, tomlTypeName(v))
	}
}

// MarshalText writes a Duration back in the form it is read.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// tomlTypeName names a decoded TOML value the way a user wrote it.
func tomlTypeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case map[string]any:
		return "a table"
	case []map[string]any, []any:
		return "an array"
	case time.Time:
		return "a date-time"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
