package provision

import (
	"strings"
	"testing"
)

// FuzzParsePart: the name after /snomprov/ comes from the network. Whatever
// it is, parsing never panics, and a name that parses is the name of what
// it parsed to.
func FuzzParsePart(f *testing.F) {
	for _, s := range []string{"snomD785.xml", "generic-000413A11FA7-gui-languages.xml", "000413A11FA7-web-languages.xml", "snomD785-00:04:13:A1:1F:A7.xml", "-.xml", ".xml", "snom-gui-languages-web-languages.xml"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		k, p, ok := parsePart(name)
		if !ok {
			return
		}
		if got := partName(k, p); !strings.EqualFold(got, name) {
			// MAC spellings are normalised; everything else round-trips.
			if k2, p2, ok2 := parsePart(got); !ok2 || k2 != k || p2 != p {
				t.Fatalf("parsePart(%q) = %+v %d, whose name %q parses to %+v %d %v", name, k, p, got, k2, p2, ok2)
			}
		}
	})
}

// FuzzCheckFragment: a raw XML fragment from the config file is either
// refused or, wrapped in a document, parses.
func FuzzCheckFragment(f *testing.F) {
	for _, s := range []string{`<a/>`, `<a><b></a>`, `text &amp; <x y="1"/>`, `<?xml version="1.0"?><a/>`, `<a x='1' x='2'/>`, `]]>`, `<!-- c -->`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, x string) {
		if checkFragment(x) != nil {
			return
		}
		w := &writer{}
		w.raw("<settings>")
		w.fragment(x, "")
		w.raw("</settings>")
		if err := checkFragment(string(w.b)); err != nil {
			t.Fatalf("accepted %q, but the document it is written into is not well-formed: %v", x, err)
		}
	})
}
