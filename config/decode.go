package config

import (
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/snomprov/snomprov/phone"
)

// The file is parsed by BurntSushi/toml into its generic tree, then walked
// here onto the typed Config. Walking ourselves (instead of toml.Decode into
// the struct) is what lets one run report every problem, not just the first
// type mismatch, with a line and column for each, and match keys
// case-sensitively. Leaf types still decode through toml.Unmarshaler and
// encoding.TextUnmarshaler, as they would with the library's decoder.

type decoder struct {
	file string
	pos  keyPositions
	errs Errors
	set  map[string]bool // every key path written in the file
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, d.pos.locate(d.file, path, fmt.Sprintf(format, args...)))
}

var (
	tomlUnmarshalerType = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	settingsType        = reflect.TypeFor[Settings]()
	macType             = reflect.TypeFor[phone.MAC]()
	addrType            = reflect.TypeFor[netip.Addr]()
)

// settingName is what the phone accepts as a setting name (snom-provisioning.md §4.3).
var settingName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// value decodes v, found at path, into rv.
func (d *decoder) value(path string, v any, rv reflect.Value) {
	d.set[path] = true
	if rv.CanAddr() {
		pv := rv.Addr()
		if pv.Type().Implements(tomlUnmarshalerType) {
			if err := pv.Interface().(toml.Unmarshaler).UnmarshalTOML(v); err != nil {
				d.unmarshalFail(path, err)
			}
			return
		}
		if pv.Type().Implements(textUnmarshalerType) {
			s, ok := v.(string)
			if !ok {
				d.fail(path, "must be a string like %s, not %s", textExample(rv.Type()), tomlTypeName(v))
				return
			}
			if err := pv.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.fail(path, "%s", textError(rv.Type(), s, err))
			}
			return
		}
	}
	switch rv.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.fail(path, "must be a string, not %s; put the value in quotes, e.g. %s", tomlTypeName(v), stringExample(path, v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.fail(path, "must be true or false, not %s", tomlTypeName(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			d.fail(path, "must be an integer, not %s", tomlTypeName(v))
			return
		}
		if rv.OverflowInt(n) {
			d.fail(path, "%d is too large", n)
			return
		}
		rv.SetInt(n)
	case reflect.Struct:
		table, ok := v.(map[string]any)
		if !ok {
			d.fail(path, "must be a table, not %s", tomlTypeName(v))
			return
		}
		d.table(path, table, rv)
	case reflect.Slice:
		d.slice(path, v, rv)
	case reflect.Map:
		d.mapping(path, v, rv)
	default:
		// Only reachable if types.go grows a field kind this walker lacks.
		d.fail(path, "snomprov cannot decode a %s here; please report this bug", rv.Type())
	}
}

// unmarshalFail reports an UnmarshalTOML error at the key inside the value it names.
func (d *decoder) unmarshalFail(path string, err error) {
	var sub *subKeyError
	if errors.As(err, &sub) {
		for _, k := range sub.key {
			path = joinKey(path, k)
		}
		d.fail(path, "%s", sub.msg)
		return
	}
	d.fail(path, "%v", err)
}

func (d *decoder) slice(path string, v any, rv reflect.Value) {
	var elems []any
	switch v := v.(type) {
	case []any:
		elems = v
	case []map[string]any:
		for _, t := range v {
			elems = append(elems, t)
		}
	default:
		d.fail(path, "must be an array, e.g. [%s], not %s", arrayExample(rv.Type().Elem()), tomlTypeName(v))
		return
	}
	out := reflect.MakeSlice(rv.Type(), len(elems), len(elems))
	for i, e := range elems {
		d.value(indexKey(path, i), e, out.Index(i))
	}
	rv.Set(out)
}

func (d *decoder) mapping(path string, v any, rv reflect.Value) {
	table, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "must be a table, not %s", tomlTypeName(v))
		return
	}
	if rv.IsNil() {
		rv.Set(reflect.MakeMapWithSize(rv.Type(), len(table)))
	}
	keyType, elemType := rv.Type().Key(), rv.Type().Elem()
	for _, k := range sortedKeys(table) {
		keyPath := joinKey(path, k)
		var key reflect.Value
		switch keyType.Kind() {
		case reflect.String:
			if rv.Type() == settingsType && !settingName.MatchString(k) {
				d.fail(keyPath, "%q is not a setting name; Snom setting names use only letters, digits and _", k)
				continue
			}
			key = reflect.ValueOf(k).Convert(keyType)
		case reflect.Int:
			n, err := parseIndex(k)
			if err != nil {
				d.fail(keyPath, "%v", err)
				continue
			}
			key = reflect.ValueOf(n).Convert(keyType)
		default:
			d.fail(keyPath, "snomprov cannot decode a map keyed by %s; please report this bug", keyType)
			continue
		}
		elem := reflect.New(elemType).Elem()
		if old := rv.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		d.value(keyPath, table[k], elem)
		rv.SetMapIndex(key, elem)
	}
}

// table decodes the keys of a TOML table onto the struct rv, matching the
// toml tags exactly.
func (d *decoder) table(path string, table map[string]any, rv reflect.Value) {
	fields := fieldsByTag(rv.Type())
	for _, k := range sortedKeys(table) {
		if i, ok := fields[k]; ok {
			d.value(joinKey(path, k), table[k], rv.FieldByIndex(i))
			continue
		}
		hint := suggest(k, fields)
		if _, isTable := table[k].(map[string]any); isTable {
			hint = strings.Join(nonEmpty(fmt.Sprintf("in unknown table %s", joinKey(path, k)), hint), "; ")
		}
		d.unknown(joinKey(path, k), table[k], hint)
	}
}

// unknown reports the leaves under an unknown key (an unknown table is
// reported through each of its keys, so every line is named).
func (d *decoder) unknown(path string, v any, hint string) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) > 0 {
			for _, k := range sortedKeys(v) {
				d.unknown(joinKey(path, k), v[k], hint)
			}
			return
		}
	case []map[string]any:
		if len(v) > 0 {
			for i, t := range v {
				d.unknown(indexKey(path, i), t, hint)
			}
			return
		}
	}
	if hint != "" {
		hint = " (" + hint + ")"
	}
	d.fail(path, "unknown key%s; see docs/configuration.md for every key", hint)
}

// fieldsByTag maps each toml tag to its field's index path. The keys of an
// embedded struct without a tag (Containers) belong to the outer table.
func fieldsByTag(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, sub := range fieldsByTag(f.Type) {
				out[k] = append([]int{i}, sub...)
			}
			continue
		}
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out[name] = []int{i}
	}
	return out
}

// suggest names the known key an unknown one was probably meant to be.
func suggest(k string, fields map[string][]int) string {
	best, bestDist := "", 3
	for name := range fields {
		if strings.EqualFold(name, k) {
			return fmt.Sprintf("keys are case-sensitive: write %q", name)
		}
		// only close matches: a one-letter slip in a short key, two in a long one
		dist := editDistance(strings.ToLower(k), name)
		if dist*2 >= len(k) {
			continue
		}
		if dist < bestDist || dist == bestDist && name < best {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func textExample(t reflect.Type) string {
	switch t {
	case macType:
		return `"00:04:13:A1:1F:A7"`
	case addrType:
		return `"10.0.0.2"`
	}
	return `"..."`
}

func textError(t reflect.Type, s string, err error) string {
	switch t {
	case macType:
		return fmt.Sprintf("%v; write it like \"00:04:13:A1:1F:A7\" (colons, dashes, dots or none, any case)", err)
	case addrType:
		return fmt.Sprintf("%q is not an IP address; write it like \"10.0.0.2\"", s)
	}
	return fmt.Sprintf("%q: %v", s, err)
}

func arrayExample(t reflect.Type) string {
	switch t {
	case addrType:
		return `"10.0.0.1"`
	}
	if t.Kind() == reflect.String {
		return `"eth0"`
	}
	return "..."
}

// stringExample shows a mistyped value as the string it should have been.
func stringExample(path string, v any) string {
	if strings.HasSuffix(path, "listen") {
		if n, ok := v.(int64); ok {
			return fmt.Sprintf(`":%d"`, n)
		}
		return `":80"`
	}
	if text, err := scalarText(v); err == nil {
		return fmt.Sprintf("%q", text)
	}
	return `"..."`
}

func reflectValue(cfg *Config) reflect.Value { return reflect.ValueOf(cfg).Elem() }

func nonEmpty(ss ...string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
