package config

import (
	"os"

	"github.com/snomprov/snomprov/internal/field"
)

// Locate places problems found after loading (the provision package's
// prepare step), keyed by full config key paths such as
// phones[2].fkeys.140, at their line and column in the file, as Load
// places its own. Load keeps only the positions ValidateNetwork needs, so
// the file is scanned again; when it cannot be read the problems keep
// their keys without a place. The compile step of issue 11 is to take
// this over.
func (c *Config) Locate(problems []*field.Error) Errors {
	if len(problems) == 0 {
		return nil
	}
	name, text := c.Source, string(defaultTOML)
	if name == "" {
		name = embeddedName
	} else if data, err := os.ReadFile(name); err == nil {
		text = string(data)
	} else {
		text = ""
	}
	pos := scanPositions(text)
	out := make(Errors, 0, len(problems))
	for _, p := range problems {
		at := pos.lookup(p.Key)
		out = append(out, &Error{File: name, Line: at.Line, Col: at.Col, Key: p.Key, Msg: p.Msg})
	}
	return out.sorted()
}
