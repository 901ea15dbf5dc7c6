package status

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// tokenLifetime is how long a page's action token is accepted: a page left
// open over a working day still works; one from yesterday must be reloaded.
const tokenLifetime = 12 * time.Hour

// tokenField is the hidden form field that carries the token.
const tokenField = "token"

// tokens mints and checks the action forms' anti-CSRF tokens: an HMAC,
// under a key made at start and never stored, of the admin user, a hash of
// the admin password and an expiry. A restart, a change of user or
// password, or the expiry makes every token given out before invalid.
type tokens struct {
	key [32]byte
}

func newTokens() *tokens {
	t := &tokens{}
	_, _ = rand.Read(t.key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return t
}

// mint returns "<expiry unix seconds>.<base64url MAC>".
func (t *tokens) mint(user, pass string, now time.Time) string {
	exp := strconv.FormatInt(now.Add(tokenLifetime).Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(t.sum(user, pass, exp))
}

func (t *tokens) sum(user, pass, exp string) []byte {
	ph := sha256.Sum256([]byte(pass))
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte("snomprov status action\x00"))
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write(ph[:])
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

var (
	errNoToken      = errors.New("the request carries no action token: actions are accepted only from the forms of this status page")
	errBadToken     = errors.New("the action token is not valid: it was not issued by this appliance since its last start for this admin user and password")
	errExpiredToken = errors.New("the action token has expired: the page is older than 12 hours")
)

// check reports why tok is not a valid token for user and pass, or nil.
func (t *tokens) check(tok, user, pass string, now time.Time) error {
	if tok == "" {
		return errNoToken
	}
	exp, mac, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > 128 {
		return errBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, t.sum(user, pass, exp)) {
		return errBadToken
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return errBadToken
	}
	if !now.Before(time.Unix(secs, 0)) {
		return errExpiredToken
	}
	return nil
}

// crossOrigin is the standard library's check (Sec-Fetch-Site, else Origin
// against Host) for requests that change something.
var crossOrigin = http.NewCrossOriginProtection()

// sameOrigin reports why r did not come from a page of this host, or nil.
// Browsers send Sec-Fetch-Site or Origin with every POST, and
// http.CrossOriginProtection judges those; a request with neither is from
// a tool (curl) or an old browser, and then a Referer, if any, must name
// this host. The token is checked as well, so a request without any of
// these headers still needs a token from a page.
func sameOrigin(r *http.Request) error {
	if err := crossOrigin.Check(r); err != nil {
		return errors.New("the request came from a page of another site (Origin " + quoteHeader(r.Header.Get("Origin")) + ", Sec-Fetch-Site " + quoteHeader(r.Header.Get("Sec-Fetch-Site")) + ")")
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
		return nil
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || u.Host != r.Host {
			return errors.New("the request came from a page of another site (Referer " + quoteHeader(ref) + ")")
		}
	}
	return nil
}

// quoteHeader bounds a header value before it goes into a message.
func quoteHeader(v string) string {
	if v == "" {
		return "none"
	}
	if len(v) > 100 {
		v = v[:100] + "..."
	}
	return strconv.Quote(v)
}
