package provision

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/snomprov/snomprov/phone"
)

// Placeholders the phone substitutes in its setting server URL (seed, step 2).
const (
	PlaceholderMAC      = "{mac}"
	PlaceholderType     = "{phone_type}"
	PlaceholderFirmware = "{firmware_version}"
)

// URLTemplate is the configured http.url taken apart: where the phone will
// look and which placeholders it fills in. The zero value means "no URL
// configured": the phone uses the base-URL file names.
type URLTemplate struct {
	Raw  string // as configured
	Base string // scheme://[userinfo@]host[:port], no trailing slash
	Dir  string // path up to and including the last '/', e.g. "/prov/"
	// Path is the file part of the template, placeholders included, e.g.
	// "/cfg/{phone_type}/{mac}.xml"; empty when the URL names a directory.
	Path string
	// MACPath is the per-MAC sibling the phone also asks for when the URL
	// has no {mac}: "office.xml" → "office-{mac}.xml". Empty otherwise.
	MACPath string
	// HasMAC: the URL holds {mac}, so the phone fetches exactly one file.
	HasMAC bool
	// Query holds template query parameters whose value is a placeholder,
	// e.g. "?mac={mac}" → {"mac": "{mac}"}.
	Query map[string]string
}

// IsZero reports whether no URL was configured.
func (t URLTemplate) IsZero() bool { return t.Raw == "" }

// ParseURLTemplate reads http.url. An empty string gives the zero template.
func ParseURLTemplate(raw string) (URLTemplate, error) {
	if raw == "" {
		return URLTemplate{}, nil
	}
	// url.Parse rejects nothing about braces in paths, but would escape
	// them on String(); we keep the raw path ourselves.
	u, err := url.Parse(raw)
	if err != nil {
		return URLTemplate{}, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return URLTemplate{}, fmt.Errorf("%q is not an absolute http:// or https:// URL; write it like \"http://10.0.0.2/\", or leave it empty for the default", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return URLTemplate{}, fmt.Errorf("%q has no host; write it as http://<address>[:port]/[file]", raw)
	}
	for _, p := range placeholderRE.FindAllString(raw, -1) {
		if !isPlaceholder(p) {
			return URLTemplate{}, fmt.Errorf("unknown placeholder %s; phones replace only %s, %s and %s", p, PlaceholderMAC, PlaceholderType, PlaceholderFirmware)
		}
	}
	t := URLTemplate{Raw: raw, HasMAC: strings.Contains(raw, PlaceholderMAC)}
	t.Base = u.Scheme + "://"
	if u.User != nil {
		t.Base += u.User.String() + "@"
	}
	t.Base += u.Host
	p := u.Path
	if p == "" {
		p = "/"
	}
	slash := strings.LastIndexByte(p, '/')
	t.Dir = p[:slash+1]
	if file := p[slash+1:]; file != "" {
		t.Path = p
		if !t.HasMAC {
			stem, ext := file, ""
			if dot := strings.LastIndexByte(file, '.'); dot > 0 {
				stem, ext = file[:dot], file[dot:]
			}
			t.MACPath = t.Dir + stem + "-" + PlaceholderMAC + ext
		}
	}
	if strings.Contains(t.Dir, PlaceholderMAC) || strings.Contains(t.Dir, PlaceholderType) || strings.Contains(t.Dir, PlaceholderFirmware) {
		// Placeholders in directories are fine for matching, but the
		// base-URL file names are then not looked up under Dir.
		t.Dir = "/"
	}
	if u.RawQuery != "" {
		for _, kv := range strings.Split(u.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if isPlaceholder(v) {
				if t.Query == nil {
					t.Query = make(map[string]string)
				}
				t.Query[k] = v
			}
		}
	}
	return t, nil
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

func isPlaceholder(s string) bool {
	return s == PlaceholderMAC || s == PlaceholderType || s == PlaceholderFirmware
}

// Vars are the values of the placeholders in one request.
type Vars struct {
	MAC      phone.MAC
	HasMAC   bool
	Model    string
	Firmware string
}

// Expand substitutes the placeholders in a template path, as the phone does.
func Expand(pattern string, v Vars) string {
	r := strings.NewReplacer(PlaceholderMAC, v.MAC.String(), PlaceholderType, v.Model, PlaceholderFirmware, v.Firmware)
	return r.Replace(pattern)
}

// Match matches a request path against a template path holding
// placeholders. It allocates nothing on a mismatch.
func Match(pattern, path string) (Vars, bool) {
	var v Vars
	ok := match(pattern, path, &v)
	return v, ok
}

func match(pattern, path string, v *Vars) bool {
	for pattern != "" {
		i := strings.IndexByte(pattern, '{')
		if i < 0 {
			return pattern == path
		}
		if !strings.HasPrefix(path, pattern[:i]) {
			return false
		}
		pattern, path = pattern[i:], path[i:]
		var ph string
		switch {
		case strings.HasPrefix(pattern, PlaceholderMAC):
			ph = PlaceholderMAC
		case strings.HasPrefix(pattern, PlaceholderType):
			ph = PlaceholderType
		case strings.HasPrefix(pattern, PlaceholderFirmware):
			ph = PlaceholderFirmware
		default:
			// A literal brace.
			if path == "" || path[0] != '{' {
				return false
			}
			pattern, path = pattern[1:], path[1:]
			continue
		}
		rest := pattern[len(ph):]
		// Longest run of the placeholder's characters first, then shorter,
		// so "{phone_type}-{mac}" splits at the right dash.
		// Values are short (a MAC is at most 17 characters with
		// separators), which also keeps backtracking cheap on hostile paths.
		n, limit := 0, maxValueLen(ph)
		for n < len(path) && n < limit && placeholderChar(ph, path[n]) {
			n++
		}
		for ; n > 0; n-- {
			val := path[:n]
			saved := *v
			if assign(ph, val, v) && match(rest, path[n:], v) {
				return true
			}
			*v = saved
		}
		return false
	}
	return path == ""
}

func maxValueLen(ph string) int {
	if ph == PlaceholderMAC {
		return len("00:04:13:a1:1f:a7")
	}
	return 32
}

func placeholderChar(ph string, c byte) bool {
	switch ph {
	case PlaceholderMAC:
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '-'
	case PlaceholderType:
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	default:
		return c >= '0' && c <= '9' || c == '.'
	}
}

func assign(ph, val string, v *Vars) bool {
	switch ph {
	case PlaceholderMAC:
		m, err := phone.ParseMAC(val)
		if err != nil || (v.HasMAC && v.MAC != m) {
			return false
		}
		v.MAC, v.HasMAC = m, true
	case PlaceholderType:
		if !phone.ValidModel(val) || (v.Model != "" && v.Model != val) {
			return false
		}
		v.Model = val
	default:
		if v.Firmware != "" && v.Firmware != val {
			return false
		}
		v.Firmware = val
	}
	return true
}
