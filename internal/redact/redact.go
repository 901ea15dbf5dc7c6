// Package redact is how secrets are hidden in what people see (logs, the
// status page, render without --show-secrets): one mask, one rule for URLs,
// one for a known secret quoted in a message.
package redact

import (
	"net/url"
	"strings"
)

// Mask is what a hidden secret reads as.
const Mask = "********"

// URL hides the password in a URL's userinfo, for logs and people:
// http://prov:s3cret@host/ becomes http://prov:********@host/.
func URL(s string) string {
	at := strings.IndexByte(s, '@')
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	if slash := strings.IndexByte(s[scheme+3:], '/'); slash >= 0 && scheme+3+slash < at {
		return s
	}
	user := s[scheme+3 : at]
	if colon := strings.IndexByte(user, ':'); colon >= 0 {
		return s[:scheme+3] + user[:colon] + ":" + Mask + s[at:]
	}
	return s
}

// Secret hides every occurrence of secret in s, as written and as a URL
// escapes it (a password inside a connection string a library's error
// quotes back), for messages that may echo what they were given.
func Secret(s, secret string) string {
	if secret == "" {
		return s
	}
	for _, form := range []string{url.QueryEscape(secret), url.PathEscape(secret)} {
		if form != secret {
			s = strings.ReplaceAll(s, form, Mask)
		}
	}
	return strings.ReplaceAll(s, secret, Mask)
}
