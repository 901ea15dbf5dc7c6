package config

import (
	"strconv"
	"strings"
)

// The TOML library reports no position for a decoded key, and the positions
// it keeps internally do not tell [[phones]] entries apart. So once a file
// has parsed, positions are rebuilt here by a small scan of the text that
// understands just enough TOML to name every key the way the decoder walk
// names it (see joinKey and indexKey).

// position is a 1-based line and byte column. File and Name are set for a
// key that came from another file than the config (a phones CSV): the file
// and the column name problems there are reported under.
type position struct {
	Line, Col  int
	File, Name string
}

// keyPositions maps a dotted key path (phones[1].settings.user_name) to where
// the key, table header or array element starts.
type keyPositions map[string]position

// lookup finds the position of path, or of its nearest ancestor that has one.
func (kp keyPositions) lookup(path string) position {
	for path != "" {
		if p, ok := kp[path]; ok {
			return p
		}
		path = parentKey(path)
	}
	return position{}
}

// locate names where path is: in file, or, for a key a phones CSV gave,
// in that CSV under its column's name.
func (kp keyPositions) locate(file, path, msg string) *Error {
	p := kp.lookup(path)
	e := &Error{File: file, Line: p.Line, Col: p.Col, Key: path, Msg: msg}
	if p.File != "" {
		e.File, e.Key = p.File, p.Name
	}
	return e
}

// joinKey appends one key segment to a dotted path, quoting it when it is not
// a bare TOML key.
func joinKey(parent, name string) string {
	seg := name
	if !isBareKey(name) {
		seg = strconv.Quote(name)
	}
	if parent == "" {
		return seg
	}
	return parent + "." + seg
}

// indexKey names element i of the array at parent.
func indexKey(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentKey strips the last segment or index from a path built by joinKey
// and indexKey.
func parentKey(path string) string {
	cut, quoted := 0, false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			cut = i
		}
	}
	return path[:cut]
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// scanPositions indexes every key of a TOML document that has already parsed.
// On malformed input it stops early instead of failing; it never panics.
func scanPositions(text string) keyPositions {
	s := &posScanner{text: text, out: keyPositions{}, tables: map[string]int{}}
	if strings.HasPrefix(text, "\ufeff") { // a byte-order mark is not a column
		s.i, s.lineAt = 3, 3
	}
	s.document()
	return s.out
}

type posScanner struct {
	text   string
	i      int
	line   int // 0-based line of text[i]
	lineAt int // byte offset where that line starts
	out    keyPositions
	// tables counts the entries of each array of tables, by resolved path.
	tables map[string]int
	// current is the resolved path of the table the following keys belong to.
	current string
}

func (s *posScanner) eof() bool { return s.i >= len(s.text) }

func (s *posScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.text[s.i]
}

func (s *posScanner) advance() {
	if s.eof() {
		return
	}
	if s.text[s.i] == '\n' {
		s.line++
		s.lineAt = s.i + 1
	}
	s.i++
}

func (s *posScanner) here() position {
	return position{Line: s.line + 1, Col: s.i - s.lineAt + 1}
}

func (s *posScanner) record(path string, p position, overwrite bool) {
	if _, ok := s.out[path]; ok && !overwrite {
		return
	}
	s.out[path] = p
}

// skipSpace skips blanks and, when newlines is set, newlines and comments too.
func (s *posScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case newlines && c == '\n':
			s.advance()
		case newlines && c == '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *posScanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *posScanner) document() {
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.current)
		}
		s.skipSpace(false)
		if s.peek() == '#' {
			s.skipComment()
		}
		if s.i == start { // malformed input: make progress and give up on this line
			s.advance()
		}
		for !s.eof() && s.peek() != '\n' {
			s.advance()
		}
	}
}

// header handles [a.b] and [[a.b]].
func (s *posScanner) header() {
	pos := s.here()
	s.advance()
	array := s.peek() == '['
	if array {
		s.advance()
	}
	parts, starts := s.key()
	path := ""
	for n, part := range parts {
		path = joinKey(path, part)
		last := n == len(parts)-1
		switch {
		case last && array:
			s.record(path, pos, false)
			count := s.tables[path]
			s.tables[path] = count + 1
			path = indexKey(path, count)
			s.record(path, pos, true)
		case last:
			s.record(path, pos, false)
		default:
			if count, ok := s.tables[path]; ok {
				path = indexKey(path, count-1)
			} else {
				s.record(path, starts[n], false)
			}
		}
	}
	s.current = path
	for !s.eof() && s.peek() != ']' && s.peek() != '\n' {
		s.advance()
	}
	for s.peek() == ']' {
		s.advance()
	}
}

// keyValue handles key = value inside the table at base.
func (s *posScanner) keyValue(base string) {
	parts, starts := s.key()
	if len(parts) == 0 {
		return
	}
	path := base
	for n, part := range parts {
		path = joinKey(path, part)
		s.record(path, starts[n], n == len(parts)-1)
	}
	s.skipSpace(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skipSpace(false)
	s.value(path)
}

// key reads a dotted key and where each of its segments starts.
func (s *posScanner) key() (parts []string, starts []position) {
	for {
		s.skipSpace(false)
		start := s.here()
		var part string
		switch c := s.peek(); {
		case c == '"':
			raw := s.basicString()
			if u, err := strconv.Unquote(raw); err == nil {
				part = u
			} else {
				part = strings.Trim(raw, `"`)
			}
		case c == '\'':
			part = strings.Trim(s.literalString(), "'")
		default:
			from := s.i
			for !s.eof() && isBareKey(s.text[s.i:s.i+1]) {
				s.advance()
			}
			if s.i == from {
				return parts, starts
			}
			part = s.text[from:s.i]
		}
		parts = append(parts, part)
		starts = append(starts, start)
		s.skipSpace(false)
		if s.peek() != '.' {
			return parts, starts
		}
		s.advance()
	}
}

// value skips one value, indexing the keys of inline tables and the elements
// of arrays under path.
func (s *posScanner) value(path string) {
	switch c := s.peek(); {
	case strings.HasPrefix(s.text[s.i:], `"""`):
		s.multiline(`"""`, true)
	case strings.HasPrefix(s.text[s.i:], `'''`):
		s.multiline(`'''`, false)
	case c == '"':
		s.basicString()
	case c == '\'':
		s.literalString()
	case c == '[':
		s.advance()
		for n := 0; ; n++ {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == ']' {
				s.advance()
				return
			}
			s.record(indexKey(path, n), s.here(), true)
			from := s.i
			s.value(indexKey(path, n))
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.i == from {
				return
			}
		}
	case c == '{':
		s.advance()
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.peek() == '}' {
				s.advance()
				return
			}
			from := s.i
			s.keyValue(path)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.i == from {
				return
			}
		}
	default:
		// number, boolean or date-time: runs to a delimiter
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.advance()
		}
	}
}

// basicString skips "..." and returns its raw text including the quotes.
func (s *posScanner) basicString() string {
	from := s.i
	s.advance()
	for !s.eof() && s.peek() != '"' && s.peek() != '\n' {
		if s.peek() == '\\' {
			s.advance()
		}
		s.advance()
	}
	if s.peek() == '"' {
		s.advance()
	}
	return s.text[from:s.i]
}

func (s *posScanner) literalString() string {
	from := s.i
	s.advance()
	for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
		s.advance()
	}
	if s.peek() == '\'' {
		s.advance()
	}
	return s.text[from:s.i]
}

func (s *posScanner) multiline(delim string, escapes bool) {
	for range 3 {
		s.advance()
	}
	for !s.eof() {
		if escapes && s.peek() == '\\' {
			s.advance()
			s.advance()
			continue
		}
		if strings.HasPrefix(s.text[s.i:], delim) {
			for range 3 {
				s.advance()
			}
			// up to two quotes right before the delimiter belong to the string
			for n := 0; n < 2 && s.peek() == delim[0]; n++ {
				s.advance()
			}
			return
		}
		s.advance()
	}
}
