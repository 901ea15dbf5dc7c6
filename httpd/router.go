package httpd

import (
	"strings"

	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/provision"
)

// RouteKind is what a request path asks for.
type RouteKind uint8

// Route kinds.
const (
	RouteOther         RouteKind = iota // not a provisioning file: files_dir, then Extra
	RouteGeneral                        // snom<type>.htm or the named URL
	RoutePhone                          // snom<type>-<MAC>.htm or the named URL's -<MAC> sibling
	RouteCombined                       // the one file of a {mac} URL
	RouteFirmwareFile                   // [snom<type>/]snom<type>-firmware.htm
	RouteFirmwareImage                  // /firmware/<name>
	RoutePart                           // /snomprov/<name>.xml: a document a <setting-files> file lists
	RouteReject                         // hostile path: 404 without touching the disk
)

// Route is the router's decision. Pattern names the pattern that matched
// or almost matched; Reason says why an almost-match failed (RouteOther
// with a Reason is a near miss, answered 404 unless files_dir has it).
type Route struct {
	Kind     RouteKind
	Model    string
	MAC      phone.MAC
	HasMAC   bool
	Firmware string // from {firmware_version}
	Name     string // firmware image or file name, relative, for os.Root
	Pattern  string
	Reason   string
}

// Patterns, as shown in logs.
const (
	patGeneral  = "<base>/snom<type>.htm"
	patPhone    = "<base>/snom<type>-<MAC>.htm"
	patFirmware = "<base>/[snom<type>/]snom<type>-firmware.htm"
	patImage    = "/firmware/<file>"
	patNamed    = "http.url"
	patPart     = provision.PartPrefix + "<name>.xml"
)

// route decides from the path alone (already %-decoded by net/http). It is
// pure and allocation-free on the common paths, so it is cheap to fuzz.
func route(path string, tpl *provision.URLTemplate) Route {
	if strings.Contains(path, "//") {
		// Phones join "http://host/" and "/file" into "//file".
		path = collapseSlashes(path)
	}
	if reason := hostile(path); reason != "" {
		return Route{Kind: RouteReject, Reason: reason}
	}
	if name, ok := strings.CutPrefix(path, "/firmware/"); ok {
		if name == "" || strings.HasSuffix(name, "/") {
			return Route{Kind: RouteReject, Pattern: patImage, Reason: "directories are not listed"}
		}
		return Route{Kind: RouteFirmwareImage, Pattern: patImage, Name: name}
	}
	if name, ok := strings.CutPrefix(path, provision.PartPrefix); ok {
		model, mac, hasMAC, ok := provision.PartIdentity(name)
		if !ok {
			return Route{Pattern: patPart, Reason: "not a document snomprov lists in a <setting-files> file"}
		}
		return Route{Kind: RoutePart, Pattern: patPart, Name: name, Model: model, MAC: mac, HasMAC: hasMAC}
	}
	if tpl != nil && tpl.Path != "" {
		if v, ok := provision.Match(tpl.Path, path); ok {
			kind := RouteGeneral
			if tpl.HasMAC {
				kind = RouteCombined
			}
			return Route{Kind: kind, Pattern: patNamed, Model: v.Model, MAC: v.MAC, HasMAC: v.HasMAC, Firmware: v.Firmware}
		}
		if tpl.MACPath != "" {
			if v, ok := provision.Match(tpl.MACPath, path); ok {
				return Route{Kind: RoutePhone, Pattern: patNamed, Model: v.Model, MAC: v.MAC, HasMAC: true, Firmware: v.Firmware}
			}
		}
		for _, p := range [2]string{tpl.Path, tpl.MACPath} {
			if p != "" && strings.Contains(p, "{") && almost(p, path) {
				return Route{Pattern: p, Reason: "the path has the shape of http.url but a {mac}, {phone_type} or {firmware_version} value is not valid (MAC: 12 hex digits; type: snom + letters and digits; version: digits and dots)"}
			}
		}
	}
	slash := strings.LastIndexByte(path, '/')
	if slash < 0 {
		return Route{Kind: RouteReject, Reason: "path does not start with /"}
	}
	dir, file := path[:slash+1], path[slash+1:]
	baseDir := dir == "/" || tpl != nil && dir == tpl.Dir
	if len(file) < 4 || !strings.EqualFold(file[:4], "snom") {
		// Only in the base directory: /api/phones/<MAC> and /phones/<MAC>
		// belong to the status page.
		if baseDir && looksLikeMACFile(file) {
			return Route{Reason: "the name is a bare MAC; such URLs only work with http.url holding {mac}, e.g. http://host/{mac}.xml"}
		}
		return Route{}
	}
	stem, ext := file, ""
	if dot := strings.LastIndexByte(file, '.'); dot >= 0 {
		stem, ext = file[:dot], file[dot:]
	}
	if ext != ".htm" {
		return Route{Pattern: patGeneral, Reason: "Snom file names end in .htm, not " + quoteExt(ext)}
	}
	if model, ok := strings.CutSuffix(stem, "-firmware"); ok {
		if !phone.ValidModel(model) {
			return Route{Pattern: patFirmware, Reason: "phone type " + quote(model) + " is not snom followed by letters and digits"}
		}
		if !baseDir && !firmwareDir(dir, model, tpl) {
			return Route{Pattern: patFirmware, Reason: "the directory must be the base or " + model + "/"}
		}
		return Route{Kind: RouteFirmwareFile, Pattern: patFirmware, Model: model}
	}
	if dash := strings.IndexByte(stem, '-'); dash >= 0 {
		model, macText := stem[:dash], stem[dash+1:]
		if !phone.ValidModel(model) {
			return Route{Pattern: patPhone, Reason: "phone type " + quote(model) + " is not snom followed by letters and digits"}
		}
		mac, err := phone.ParseMAC(macText)
		if err != nil {
			return Route{Pattern: patPhone, Model: model, Reason: "the MAC needs 12 hex digits, got " + quote(macText)}
		}
		if !baseDir {
			return Route{Pattern: patPhone, Model: model, MAC: mac, HasMAC: true, Reason: "the directory must be the base URL's"}
		}
		return Route{Kind: RoutePhone, Pattern: patPhone, Model: model, MAC: mac, HasMAC: true}
	}
	if !phone.ValidModel(stem) {
		return Route{Pattern: patGeneral, Reason: "phone type " + quote(stem) + " is not snom followed by letters and digits"}
	}
	if !baseDir {
		return Route{Pattern: patGeneral, Model: stem, Reason: "the directory must be the base URL's"}
	}
	return Route{Kind: RouteGeneral, Pattern: patGeneral, Model: stem}
}

// firmwareDir accepts /snom<type>/ under the root or the URL's directory:
// the phone's first firmware guess is <dir>/snomD765/snomD765-firmware.htm.
func firmwareDir(dir, model string, tpl *provision.URLTemplate) bool {
	sub, ok := strings.CutSuffix(dir, model+"/")
	return ok && (sub == "/" || tpl != nil && sub == tpl.Dir)
}

// hostile rejects paths that try to leave the served directories. os.Root
// is the real barrier; this only makes the log say why.
func hostile(path string) string {
	if path == "" || path[0] != '/' {
		return "path does not start with /"
	}
	if strings.ContainsAny(path, "\x00\\") {
		return "NUL or backslash in path"
	}
	for rest := path[1:]; rest != ""; {
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if seg == ".." || seg == "." {
			return "path traversal (" + seg + " segment)"
		}
	}
	return ""
}

func looksLikeMACFile(file string) bool {
	stem := file
	if dot := strings.IndexByte(file, '.'); dot >= 0 {
		stem = file[:dot]
	}
	if len(stem) != 12 {
		return false
	}
	_, err := phone.ParseMAC(stem)
	return err == nil
}

// quote bounds what a hostile path can put into a log line.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return `"` + s + `"`
}

func quoteExt(ext string) string {
	if ext == "" {
		return "nothing"
	}
	return quote(ext)
}

func collapseSlashes(path string) string {
	b := make([]byte, 0, len(path))
	for i := 0; i < len(path); i++ {
		if path[i] == '/' && len(b) > 0 && b[len(b)-1] == '/' {
			continue
		}
		b = append(b, path[i])
	}
	return string(b)
}

// almost reports whether path has pattern's text before its first and after
// its last placeholder: the phone meant this URL but filled in a bad value.
func almost(pattern, path string) bool {
	first, last := strings.IndexByte(pattern, '{'), strings.LastIndexByte(pattern, '}')
	if first < 0 || last < 0 {
		return false
	}
	prefix, suffix := pattern[:first], pattern[last+1:]
	return len(path) > len(prefix)+len(suffix) && strings.HasPrefix(path, prefix) && strings.HasSuffix(path, suffix) &&
		strings.Count(path, "/") == strings.Count(pattern, "/")
}
