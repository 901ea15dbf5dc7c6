package metrics

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// This file is a strict parser of the Prometheus text format (0.0.4) with the
// checks `promtool check metrics` applies, so the tests need no promtool.

type parsedSeries struct {
	name   string
	labels map[string]string
	value  float64
}

type parsedFamily struct {
	name, help, typ string
	series          []parsedSeries
}

type exposition struct {
	families map[string]*parsedFamily
	order    []string
}

// value returns the value of the series with exactly these labels.
func (e *exposition) value(name string, labels map[string]string) (float64, bool) {
	f := e.families[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.series {
		if sameLabels(s.labels, labels) {
			return s.value, true
		}
	}
	return 0, false
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var (
	snakeCaseRE = regexp.MustCompile(`^[a-z_:][a-z0-9_:]*$`)
	labelRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition parses text and returns an error for anything a strict
// scraper or promtool's linter would reject.
func parseExposition(text string) (*exposition, error) {
	e := &exposition{families: map[string]*parsedFamily{}}
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition does not end with a line feed")
	}
	var current string
	seenSeries := map[string]bool{}
	family := func(name string) (*parsedFamily, error) {
		f := e.families[name]
		if f == nil {
			f = &parsedFamily{name: name}
			e.families[name] = f
			e.order = append(e.order, name)
		} else if name != current {
			return nil, fmt.Errorf("family %s is not contiguous", name)
		}
		current = name
		return f, nil
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		ln := i + 1
		if line == "" {
			return nil, fmt.Errorf("line %d: empty line", ln)
		}
		if strings.HasPrefix(line, "#") {
			fields := strings.SplitN(line, " ", 4)
			if len(fields) < 3 || (fields[1] != "HELP" && fields[1] != "TYPE") {
				continue // an ordinary comment
			}
			name := fields[2]
			if !snakeCaseRE.MatchString(name) {
				return nil, fmt.Errorf("line %d: metric name %q is not snake_case", ln, name)
			}
			f, err := family(name)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", ln, err)
			}
			rest := ""
			if len(fields) == 4 {
				rest = fields[3]
			}
			switch fields[1] {
			case "HELP":
				if f.help != "" {
					return nil, fmt.Errorf("line %d: second HELP for %s", ln, name)
				}
				if len(f.series) > 0 {
					return nil, fmt.Errorf("line %d: HELP for %s after its samples", ln, name)
				}
				h, err := unescape(rest, false)
				if err != nil {
					return nil, fmt.Errorf("line %d: HELP: %w", ln, err)
				}
				if h == "" {
					return nil, fmt.Errorf("line %d: empty HELP for %s", ln, name)
				}
				f.help = h
			case "TYPE":
				if f.typ != "" {
					return nil, fmt.Errorf("line %d: second TYPE for %s", ln, name)
				}
				if len(f.series) > 0 {
					return nil, fmt.Errorf("line %d: TYPE for %s after its samples", ln, name)
				}
				switch rest {
				case "counter", "gauge", "untyped":
				default:
					return nil, fmt.Errorf("line %d: unsupported TYPE %q", ln, rest)
				}
				f.typ = rest
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		f, err := family(s.name)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		key := s.name + "{" + canonicalLabels(s.labels) + "}"
		if seenSeries[key] {
			return nil, fmt.Errorf("line %d: duplicate series %s", ln, key)
		}
		seenSeries[key] = true
		f.series = append(f.series, s)
	}
	// promtool's lint rules.
	for _, name := range e.order {
		f := e.families[name]
		if f.help == "" {
			return nil, fmt.Errorf("%s has no HELP", name)
		}
		if f.typ == "" {
			return nil, fmt.Errorf("%s has no TYPE", name)
		}
		if f.typ == "counter" && !strings.HasSuffix(name, "_total") {
			return nil, fmt.Errorf("counter %s should end in _total", name)
		}
		if f.typ != "counter" && strings.HasSuffix(name, "_total") {
			return nil, fmt.Errorf("non-counter %s should not end in _total", name)
		}
		for _, s := range f.series {
			if f.typ == "counter" && (s.value < 0 || math.IsNaN(s.value)) {
				return nil, fmt.Errorf("counter %s has value %v", name, s.value)
			}
		}
	}
	return e, nil
}

func canonicalLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: tiny maps
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	return b.String()
}

func parseSample(line string) (parsedSeries, error) {
	s := parsedSeries{labels: map[string]string{}}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' {
		i++
	}
	s.name = line[:i]
	if !snakeCaseRE.MatchString(s.name) {
		return s, fmt.Errorf("metric name %q is not snake_case", s.name)
	}
	if i < len(line) && line[i] == '{' {
		i++
		for {
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			j := strings.IndexByte(line[i:], '=')
			if j < 0 {
				return s, fmt.Errorf("label without '='")
			}
			lname := line[i : i+j]
			if !labelRE.MatchString(lname) || strings.HasPrefix(lname, "__") {
				return s, fmt.Errorf("bad label name %q", lname)
			}
			if _, dup := s.labels[lname]; dup {
				return s, fmt.Errorf("repeated label %q", lname)
			}
			i += j + 1
			if i >= len(line) || line[i] != '"' {
				return s, fmt.Errorf("label %s: value not quoted", lname)
			}
			i++
			var raw strings.Builder
			closed := false
			for i < len(line) {
				c := line[i]
				if c == '\\' && i+1 < len(line) {
					raw.WriteByte(c)
					raw.WriteByte(line[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				raw.WriteByte(c)
				i++
			}
			if !closed {
				return s, fmt.Errorf("label %s: unterminated value", lname)
			}
			v, err := unescape(raw.String(), true)
			if err != nil {
				return s, fmt.Errorf("label %s: %w", lname, err)
			}
			s.labels[lname] = v
			if i < len(line) && line[i] == ',' {
				i++
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return s, fmt.Errorf("expected ',' or '}' after label %s", lname)
		}
	}
	if i >= len(line) || line[i] != ' ' {
		return s, fmt.Errorf("no space before the value")
	}
	fields := strings.Split(line[i+1:], " ")
	if len(fields) < 1 || len(fields) > 2 {
		return s, fmt.Errorf("want value [timestamp], got %q", line[i+1:])
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, err
	}
	s.value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp %q", fields[1])
		}
	}
	return s, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "xXpP_") {
		return 0, fmt.Errorf("bad value %q", s)
	}
	return v, nil
}

// unescape decodes \\ and \n (and \" in label values); any other escape, a
// raw line feed or invalid UTF-8 is an error.
func unescape(s string, label bool) (string, error) {
	if !isValidUTF8(s) {
		return "", fmt.Errorf("invalid UTF-8 %q", s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			return "", fmt.Errorf("raw line feed")
		}
		if c == '"' && label {
			return "", fmt.Errorf("unescaped quote")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !label {
				return "", fmt.Errorf(`\" in HELP`)
			}
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }
