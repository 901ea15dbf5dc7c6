package provision

import (
	"bytes"
	"encoding/base64"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/phone"
)

// Bootstrap is the file a phone gets for its own file's URL when it asked
// over plain HTTP and its own file is served only over HTTPS: no setting
// of its own, no secret, only setting_server (read-only) moving it to
// httpsURL, and trust (DER certificates: the CA of the HTTPS certificate)
// in <certificates>, the phone's list of trusted server certificates,
// inline as type="base64" so it holds at once, before the phone follows
// setting_server (Snom's <certificates> tag, as Gigaset's copy of the
// configuration-file pages documents it). It is small and rendered on
// demand.
func Bootstrap(httpsURL string, trust [][]byte) Doc {
	w := &writer{b: make([]byte, 0, 256+2048*len(trust))}
	w.raw(xmlHeader)
	w.raw("<settings>\n")
	w.phoneSettings(config.Settings{"setting_server": {Value: httpsURL, Perm: "R"}}, "R", true)
	if len(trust) > 0 {
		w.raw("  <certificates>\n")
		for _, der := range trust {
			w.raw("    <certificate type=\"base64\">")
			w.raw(base64.StdEncoding.EncodeToString(der))
			w.raw("</certificate>\n")
		}
		w.raw("  </certificates>\n")
	}
	w.raw("</settings>\n")
	return newDoc(bytes.Clone(w.b))
}

func newDoc(body []byte) Doc {
	h := fnv.New64a()
	h.Write(body)
	etag := `"` + strconv.FormatUint(h.Sum64(), 36) + `"`
	return Doc{Body: body, ETag: etag, ETagHeader: []string{etag}, LengthHeader: []string{strconv.Itoa(len(body))}}
}

// SecretPhones lists the configured phones whose own file carries a
// secret setting (config.IsSecret), in config order.
func (c *Catalog) SecretPhones() []phone.MAC {
	var out []phone.MAC
	for i := range c.cfg.Phones {
		p := &c.cfg.Phones[i]
		for name := range p.Settings {
			if config.IsSecret(name) {
				out = append(out, p.MAC)
				break
			}
		}
	}
	return out
}

// GeneralSecrets lists the secret settings ([settings] and
// [models.X.settings]) that the general files carry, sorted: a general
// file is served over plain HTTP too.
func (c *Catalog) GeneralSecrets() []string {
	seen := map[string]bool{}
	add := func(s config.Settings) {
		for name := range s {
			if config.IsSecret(name) {
				seen[name] = true
			}
		}
	}
	add(c.cfg.Settings)
	for _, m := range c.cfg.Models {
		add(m.Settings)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
