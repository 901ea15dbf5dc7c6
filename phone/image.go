package phone

import "strings"

// ImageName is the file name of a firmware image or its URL: the last path
// segment, without query or fragment.
func ImageName(name string) string {
	if i := strings.IndexAny(name, "?#"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// ImageVersion is the firmware version an image's name carries: the first
// dotted number between - or _ in its file name
// (snomD785-10.1.215.13-SIP-r.bin → 10.1.215.13); empty when it has none.
func ImageVersion(name string) string {
	for _, tok := range strings.FieldsFunc(ImageName(name), func(r rune) bool { return r == '-' || r == '_' }) {
		dots := strings.Count(tok, ".")
		if dots >= 1 && strings.Trim(tok, "0123456789.") == "" && tok[0] != '.' && tok[len(tok)-1] != '.' {
			return tok
		}
	}
	return ""
}

// ImageModel is the phone type an image's name is for
// (snomD785-10.1.215.13-SIP-r.bin → snomD785); empty when its name does
// not start with one.
func ImageModel(name string) string {
	if t, _, _ := strings.Cut(ImageName(name), "-"); ValidModel(t) {
		return t
	}
	return ""
}
