package config

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

// DefaultStateDir is server.state_dir when a config file does not set it.
const DefaultStateDir = "/var/lib/snomprov"

//go:embed default.toml
var defaultTOML []byte

// embeddedName is the file name problems in the embedded defaults would carry.
const embeddedName = "(embedded defaults)"

// Load reads, decodes and validates the config file at path. Every problem
// found is returned together, as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	return Parse(path, data)
}

func readError(path string, err error) error {
	msg := fmt.Sprintf("cannot read the config file: %v", err)
	if errors.Is(err, fs.ErrNotExist) {
		msg += "; check the path, or run without -config to use the embedded defaults"
	}
	return Errors{{File: path, Msg: msg}}
}

// Parse decodes and validates a config file's text; name is used in errors
// and as Source, and relative paths in the file are taken relative to name's
// directory.
func Parse(name string, data []byte) (*Config, error) {
	cfg, err := Decode(name, data)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode is Parse that also returns what could be decoded when there are
// problems: keys that failed keep their defaults. It lets check run the
// compile on the rest and report every problem of a file at once. The
// config is nil only when the text is not TOML at all.
func Decode(name string, data []byte) (*Config, error) {
	cfg, err := parse(name, data, DefaultStateDir, fileDefaults)
	if cfg != nil {
		cfg.Source = name
	}
	return cfg, err
}

// DecodeFile is Decode of the file at path.
func DecodeFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, err)
	}
	return Decode(path, data)
}

// Default returns the embedded defaults (Source == ""): HTTP on :8080, PnP on
// but answering no phone, DHCP off. It is the decode of default.toml.
func Default() *Config {
	cfg, err := parse(embeddedName, defaultTOML, defaultStateDir(writable, os.Getenv, os.UserHomeDir), fileDefaults)
	if err != nil {
		panic("config: the embedded defaults do not load: " + err.Error())
	}
	cfg.Source = ""
	return cfg
}

// fileDefaults is every default that does not depend on another key. They
// are set before decoding, so keys the file leaves out keep them.
func fileDefaults(stateDir string) *Config {
	return &Config{
		Server:    Server{StateDir: stateDir, LogLevel: "info"},
		HTTP:      HTTP{Listen: ":80", HTTPSListen: ":443"},
		PnP:       PnP{Enabled: true},
		DHCP:      DHCP{DHCPSubnetOptions: DHCPSubnetOptions{LeaseTime: Duration{12 * time.Hour}}, ConflictProbe: Duration{300 * time.Millisecond}},
		Provision: Provision{DefaultPerm: "R", PinSettingServer: PinConfigured},
		Status:    Status{StaleAfter: Duration{24 * time.Hour}},
	}
}

func parse(name string, data []byte, stateDir string, defaults func(string) *Config) (*Config, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		return nil, syntaxError(name, err)
	}
	d := &decoder{file: name, pos: scanPositions(string(data)), set: map[string]bool{}}
	cfg := defaults(stateDir)
	d.table("", tree, reflectValue(cfg))
	d.phonesCSV(cfg, filepath.Dir(name))
	cfg.explicit = d.set
	cfg.positions = d.pos
	cfg.applyDerivedDefaults(filepath.Dir(name))
	c := &checker{decoder: d, cfg: cfg, reported: map[string]bool{}}
	for _, e := range d.errs {
		c.reported[e.Key] = true
	}
	c.validate()
	if err := d.errs.asError(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// ReleasePositions drops the index of key positions once the compile
// has located its problems: for a config of 1000 phones it is megabytes
// the running server never reads. Locate then names keys without lines.
func (c *Config) ReleasePositions() { c.positions = nil }

// FileName is the name problems in this config carry.
func (c *Config) FileName() string {
	if c.Source == "" {
		return embeddedName
	}
	return c.Source
}

// Locate turns every field.Error in err (keys are full key paths, like
// "dhcp.pool") into an Error naming this file, line and column. Other
// errors keep their text, under the file's name. nil stays nil.
func (c *Config) Locate(err error) error {
	if err == nil {
		return nil
	}
	fes := field.List(err)
	if len(fes) == 0 {
		return Errors{{File: c.FileName(), Msg: err.Error()}}
	}
	return c.LocateAll(fes).asError()
}

// LocateAll is Locate for a list, as for warnings.
func (c *Config) LocateAll(fes []*field.Error) Errors {
	out := make(Errors, 0, len(fes))
	seen := map[string]bool{}
	for _, fe := range fes {
		if seen[fe.Key+"\x00"+fe.Msg] { // two servers may say the same of one key
			continue
		}
		seen[fe.Key+"\x00"+fe.Msg] = true
		out = append(out, c.positions.locate(c.FileName(), fe.Key, fe.Msg))
	}
	return out.sorted()
}

// syntaxError turns the TOML library's error into a positioned Error.
func syntaxError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Errors{{File: name, Line: pe.Position.Line, Col: pe.Position.Col,
			Msg: "TOML syntax error: " + pe.Message + "; see https://toml.io for the syntax"}}
	}
	return Errors{{File: name, Msg: "TOML syntax error: " + strings.TrimPrefix(err.Error(), "toml: ")}}
}

// applyDerivedDefaults fills the defaults that depend on other keys, and
// makes relative paths relative to the config file's directory (a service
// runs with / as its working directory).
func (c *Config) applyDerivedDefaults(baseDir string) {
	for _, p := range []*string{&c.Server.StateDir, &c.HTTP.FirmwareDir, &c.HTTP.FilesDir, &c.HTTP.TLSCert, &c.HTTP.TLSKey, &c.HTTP.ClientCA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	if !c.IsSet("http.firmware_dir") {
		c.HTTP.FirmwareDir = filepath.Join(c.Server.StateDir, "firmware")
	}
	if !c.IsSet("pnp.interfaces") && c.Server.Interface != "" {
		c.PnP.Interfaces = []string{c.Server.Interface}
	}
	if c.Status.AdminPassword != "" && c.Status.AdminUser == "" {
		c.Status.AdminUser = "admin"
	}
	for i := range c.Phonebook {
		e := &c.Phonebook[i]
		if e.Context == "" {
			e.Context = "active"
		}
		if e.Type == "" {
			e.Type = "none"
		}
	}
	c.phoneByMAC = make(map[phone.MAC]int, len(c.Phones))
	for i := len(c.Phones) - 1; i >= 0; i-- { // the first entry wins
		c.phoneByMAC[c.Phones[i].MAC] = i
	}
}

// IsSet reports whether the file set key (a dotted path as in errors, e.g.
// "pnp.answer" or "phones[0].model"). Defaults are not set; the embedded
// defaults count as a file.
func (c *Config) IsSet(key string) bool { return c.explicit[key] }

// Phone returns the [[phones]] entry for m.
func (c *Config) Phone(m phone.MAC) (*Phone, bool) {
	if i, ok := c.phoneByMAC[m]; ok && i < len(c.Phones) && c.Phones[i].MAC == m {
		return &c.Phones[i], true
	}
	if c.phoneByMAC != nil && len(c.phoneByMAC) == len(c.Phones) {
		return nil, false
	}
	for i := range c.Phones { // a Config built or changed by hand
		if c.Phones[i].MAC == m {
			return &c.Phones[i], true
		}
	}
	return nil, false
}

// HTTPS reports whether the HTTPS listener is on (http.https_listen set).
func (c *Config) HTTPS() bool { return c.HTTP.HTTPSListen != "" }

// HTTPPort is the TCP port of http.listen, or 0 if it has none.
func (c *Config) HTTPPort() int {
	_, port, err := net.SplitHostPort(c.HTTP.Listen)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	return n
}

// SettingURL is the setting server URL handed to phones by DHCP and PnP:
// http.url when set, else http://<host>[:port]/ on http.listen, the port
// left out when it is 80. It is plain HTTP: a factory-fresh phone cannot
// trust the appliance's CA yet, so its first fetch is the bootstrap that
// moves it to HTTPS (httpd). With Basic auth on, http.username and
// http.password are in it (a factory-fresh phone knows no other way to send
// them). An invalid host falls back to server.advertise,
// then to the host of http.listen, then to 127.0.0.1.
func (c *Config) SettingURL(host netip.Addr) string {
	if c.HTTP.URL != "" {
		return c.HTTP.URL
	}
	scheme, defaultPort := "http", 80
	if !host.IsValid() {
		host = c.Server.Advertise
	}
	if !host.IsValid() {
		if h, _, err := net.SplitHostPort(c.HTTP.Listen); err == nil {
			host, _ = netip.ParseAddr(h)
		}
	}
	if !host.IsValid() || host.IsUnspecified() {
		host = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	host = host.Unmap()
	hostText := host.String()
	if host.Is6() {
		hostText = "[" + hostText + "]"
	}
	if port := c.HTTPPort(); port != 0 && port != defaultPort {
		hostText += ":" + strconv.Itoa(port)
	}
	if c.HTTP.Username != "" {
		hostText = url.UserPassword(c.HTTP.Username, c.HTTP.Password).String() + "@" + hostText
	}
	return scheme + "://" + hostText + "/"
}

// IsSecret reports whether a setting's value must be masked in output meant
// for people (render without --show-secrets, the status page and API, logs).
// The rule: the name, lower-cased, contains "_pass", "password", "_pin",
// "secret" or "token", or is exactly "pass" or "pin".
func IsSecret(name string) bool {
	n := strings.ToLower(name)
	if n == "pass" || n == "pin" {
		return true
	}
	for _, s := range []string{"_pass", "password", "_pin", "secret", "token"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// defaultStateDir is /var/lib/snomprov when this user may write there (or
// create it), else $XDG_STATE_HOME/snomprov, else ~/.local/state/snomprov.
func defaultStateDir(canWrite func(string) bool, getenv func(string) string, home func() (string, error)) string {
	if canWrite(DefaultStateDir) {
		return DefaultStateDir
	}
	if x := getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "snomprov")
	}
	if h, err := home(); err == nil && h != "" {
		return filepath.Join(h, ".local", "state", "snomprov")
	}
	return filepath.Join(os.TempDir(), "snomprov")
}

// writable reports whether dir, or the nearest existing directory above it
// (where it would be created), is writable by this process.
func writable(dir string) bool {
	for {
		if _, err := os.Stat(dir); err == nil {
			return unix.Access(dir, unix.W_OK) == nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}
