package simulate

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// Identity is who the simulated phone claims to be.
type Identity struct {
	MAC      phone.MAC
	Model    string // snomD785
	Firmware string // 10.1.33.33
}

// UserAgent is the Snom desk-phone HTTP User-Agent for this identity
// (snom-provisioning.md §3.2, the D785 form).
func (id Identity) UserAgent() string {
	return fmt.Sprintf("Mozilla/4.0 (compatible; %s-SIP %s 2010.12-00004-g9ba52f5 %s SXM:0 UXM:0)", id.Model, id.Firmware, id.MAC)
}

// Expand substitutes the placeholders the phone fills in (seed, step 2):
// {mac}, {phone_type} and {firmware_version}.
func (id Identity) Expand(s string) string {
	return strings.NewReplacer("{mac}", id.MAC.String(), "{phone_type}", id.Model, "{firmware_version}", id.Firmware).Replace(s)
}

// SettingFileURLs lists the setting files a phone fetches for a setting
// server URL, in order (seed, step 2):
//   - a base URL without a file name: <base>/<type>.htm, <base>/<type>-<MAC>.htm
//   - a file URL containing {mac}: just that URL, expanded
//   - another file URL: the file, then the file with -<MAC> before its extension
func SettingFileURLs(settingURL string, id Identity) ([]string, error) {
	u, err := url.Parse(id.Expand(settingURL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("setting URL %q is not an absolute http(s) URL", settingURL)
	}
	if u.Path == "" || strings.HasSuffix(u.Path, "/") {
		base := *u
		if base.Path == "" {
			base.Path = "/"
		}
		a, b := base, base
		a.Path += id.Model + ".htm"
		b.Path += id.Model + "-" + id.MAC.String() + ".htm"
		return []string{a.String(), b.String()}, nil
	}
	if strings.Contains(settingURL, "{mac}") {
		return []string{u.String()}, nil
	}
	variant := *u
	dir, file := path.Split(u.Path)
	ext := path.Ext(file)
	variant.Path = dir + strings.TrimSuffix(file, ext) + "-" + id.MAC.String() + ext
	variant.RawPath = ""
	return []string{u.String(), variant.String()}, nil
}

// FirmwareFallbackURLs are the firmware files a phone tries when its
// settings set neither firmware_status nor firmware (seed, step 3):
// <dir>/<type>/<type>-firmware.htm, then <dir>/<type>-firmware.htm, where
// dir is the setting URL without its file name.
func FirmwareFallbackURLs(settingURL string, id Identity) ([]string, error) {
	u, err := url.Parse(id.Expand(settingURL))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("setting URL %q is not an absolute URL", settingURL)
	}
	dir, _ := path.Split(u.Path)
	if dir == "" {
		dir = "/"
	}
	base := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: dir}
	a, b := base, base
	a.Path += id.Model + "/" + id.Model + "-firmware.htm"
	b.Path += id.Model + "-firmware.htm"
	return []string{a.String(), b.String()}, nil
}

// SettingsFile is what a parsed provisioning XML file holds.
type SettingsFile struct {
	Root           string            // settings | setting-files | firmware-settings | ...
	Files          []string          // <setting-files><file url=...>
	Settings       map[string]string // phone-settings name → value (idx 1 or first seen)
	SettingCount   int               // every element below <phone-settings>
	FirmwareStatus string            // phone-settings firmware_status
	Firmware       string            // <firmware> (firmware file) or phone-settings firmware
	// Keep is the comment of a firmware file that names no image: why the
	// server tells the phone to keep its firmware (snomprov's rollout or
	// loop guard).
	Keep            string
	FunctionKeys    int
	PhonebookItems  int
	UnknownElements int // direct children of <settings> that are not known containers
}

// maxBody caps what a settings fetch reads: settings files are small.
const maxBody = 4 << 20

// ParseSettings parses one Snom provisioning XML file (snom-provisioning.md
// §4.1/4.2). It fails on anything that is not well-formed XML with one of
// the Snom root elements.
func ParseSettings(b []byte) (SettingsFile, error) {
	f := SettingsFile{Settings: map[string]string{}}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if len(stack) == 0 {
				if f.Root != "" {
					return f, errors.New("not well-formed XML: more than one root element")
				}
				f.Root = name
				switch name {
				case "settings", "setting-files", "firmware-settings", "phone-settings", "functionKeys", "function-keys", "tbook", "phone-book", "gui-languages", "web-languages", "dialplan":
				default:
					return f, fmt.Errorf("root element <%s> is not a Snom provisioning file", name)
				}
			}
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			switch {
			case name == "file" && parent == "setting-files":
				if u := attr(t, "url"); u != "" {
					f.Files = append(f.Files, u)
				}
			case parent == "phone-settings":
				f.SettingCount++
			case name == "fkey":
				f.FunctionKeys++
			case name == "item" && (parent == "tbook" || parent == "phone-book"):
				f.PhonebookItems++
			case parent == "settings" && !knownSettingsChild(name):
				f.UnknownElements++
			}
			stack = append(stack, name)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.Comment:
			if len(stack) == 1 && f.Root == "firmware-settings" && f.Keep == "" {
				f.Keep = strings.TrimSpace(string(t))
			}
		case xml.EndElement:
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			parent := ""
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			v := strings.TrimSpace(text.String())
			switch {
			case parent == "phone-settings" || (f.Root == "phone-settings" && len(stack) == 1):
				if _, seen := f.Settings[name]; !seen {
					f.Settings[name] = v
				}
				switch name {
				case "firmware_status":
					f.FirmwareStatus = v
				case "firmware":
					f.Firmware = v
				}
			case parent == "firmware-settings" && name == "firmware":
				f.Firmware = v
			}
			text.Reset()
		}
	}
	if f.Root == "" {
		return f, errors.New("empty document: no XML root element")
	}
	return f, nil
}

func knownSettingsChild(name string) bool {
	switch name {
	case "phone-settings", "functionKeys", "function-keys", "tbook", "phone-book", "dialplan", "ReplacementPlan", "certificates", "uploads", "gui-languages", "web-languages", "firmware-settings":
		return true
	}
	return false
}

func attr(t xml.StartElement, name string) string {
	for _, a := range t.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Summary is a short human description of a parsed file.
func (f SettingsFile) Summary() string {
	switch f.Root {
	case "setting-files":
		return fmt.Sprintf("<setting-files> listing %d file(s)", len(f.Files))
	case "firmware-settings":
		if f.Firmware == "" {
			return "<firmware-settings> without <firmware>"
		}
		return "<firmware-settings> → " + f.Firmware
	}
	parts := []string{fmt.Sprintf("<%s>: %d setting(s)", f.Root, f.SettingCount)}
	if f.FunctionKeys > 0 {
		parts = append(parts, fmt.Sprintf("%d function key(s)", f.FunctionKeys))
	}
	if f.PhonebookItems > 0 {
		parts = append(parts, fmt.Sprintf("%d phonebook entr(ies)", f.PhonebookItems))
	}
	if f.FirmwareStatus != "" {
		parts = append(parts, "firmware_status "+f.FirmwareStatus)
	}
	return strings.Join(parts, ", ")
}

// Fetcher does the phone's HTTP requests from a given source address.
type Fetcher struct {
	Client *http.Client
	Phone  Identity
}

// NewFetcher returns a Fetcher whose connections leave from src (zero: any).
// It never uses a proxy: a phone does not either.
func NewFetcher(id Identity, src netip.Addr, timeout time.Duration) *Fetcher {
	d := &net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	tr := &http.Transport{DialContext: d.DialContext, Proxy: nil, ResponseHeaderTimeout: timeout, DisableKeepAlives: false}
	return &Fetcher{Client: &http.Client{Transport: tr}, Phone: id}
}

// TrustAndPresent makes f trust caFile (PEM) for HTTPS instead of the
// system's roots, and present the device certificate certFile/keyFile;
// empty names leave that part as it is.
func (f *Fetcher) TrustAndPresent(caFile, certFile, keyFile string) error {
	if caFile == "" && certFile == "" {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return fmt.Errorf("--ca %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("--client-cert/--client-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	f.Client.Transport.(*http.Transport).TLSClientConfig = cfg
	return nil
}

// HTTPError is a non-200 answer.
type HTTPError struct {
	URL    string
	Status int
	Text   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %s", e.Text) }

// Get fetches url like the phone (Snom User-Agent) and returns the body
// (capped at limit bytes; limit < 0 discards it) and its length.
func (f *Fetcher) Get(ctx context.Context, rawURL string, limit int64) ([]byte, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("bad URL %q: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", f.Phone.UserAgent())
	res, err := f.Client.Do(req)
	if err != nil {
		return nil, 0, explainNetErr(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return nil, 0, &HTTPError{URL: rawURL, Status: res.StatusCode, Text: res.Status}
	}
	if limit < 0 {
		n, err := io.Copy(io.Discard, res.Body)
		if err != nil {
			return nil, n, fmt.Errorf("download broke off after %d bytes: %w", n, err)
		}
		if res.ContentLength >= 0 && n != res.ContentLength {
			return nil, n, fmt.Errorf("got %d bytes but Content-Length said %d", n, res.ContentLength)
		}
		return nil, n, nil
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, int64(len(b)), fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, int64(len(b)), fmt.Errorf("body is larger than %d bytes; a settings file that big is a mistake", limit)
	}
	return b, int64(len(b)), nil
}

func explainNetErr(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("connection refused: nothing listens there; is snomprov running and is [http] listen right? (%w)", err)
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"):
		return fmt.Errorf("no answer (timeout): a firewall drops it or the host is down (%w)", err)
	case strings.Contains(msg, "no route to host") || strings.Contains(msg, "network is unreachable"):
		return fmt.Errorf("host unreachable from this interface; is the URL's host on the phones' LAN? (%w)", err)
	case strings.Contains(msg, "certificate"):
		return fmt.Errorf("TLS certificate not trusted (%w); phones need a certificate they trust too", err)
	}
	return err
}
