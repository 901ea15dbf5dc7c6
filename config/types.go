// Package config is snomprov's one TOML file: its types, its embedded
// defaults, strict decoding, the rules no server owns, and the key
// positions that locate every problem (FILE:LINE:COL: key: message).
//
// The layout of the file is the user-facing contract; packaging/snomprov.toml
// shows every key with a comment. Protocol packages do not import config:
// package plan translates a Config into each server's own options and runs
// their rules.
package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// Config is a whole, decoded configuration. Values with a fixed set of
// choices (pnp.answer, http.unknown_phones, http.verify_mac, dhcp.serve)
// are plain text here: the server that owns each names its choices and
// its default once, and checks them in its Prepare (package plan runs it).
// Empty means that default.
type Config struct {
	// Source is the file the config was read from; empty for the embedded defaults.
	Source string `toml:"-"`

	Server    Server           `toml:"server"`
	HTTP      HTTP             `toml:"http"`
	PnP       PnP              `toml:"pnp"`
	DHCP      DHCP             `toml:"dhcp"`
	Provision Provision        `toml:"provision"`
	Status    Status           `toml:"status"`
	Inventory Inventory        `toml:"inventory"`
	Settings  Settings         `toml:"settings"` // <phone-settings> for every phone
	Models    map[string]Model `toml:"models"`   // keyed by phone type, e.g. snomD785
	Phones    []Phone          `toml:"phones"`
	// Groups are named sets of phones with their own firmware
	// ([groups.<name>]), keyed by name.
	Groups map[string]Group `toml:"groups"`
	// PhonesCSV names CSV files of phones (csv.go), relative to the config
	// file; their rows follow [[phones]] in Phones.
	PhonesCSV  []string         `toml:"phones_csv"`
	Phonebook  []PhonebookEntry `toml:"phonebook"`
	Lines      LineDefaults     `toml:"lines"` // what every line of [[phones]] lines = [...] leaves out
	Containers                  // the global scope's containers (containers.go), top-level keys

	// Filled by Parse; a Config built by hand works without them.
	explicit   map[string]bool   // key paths the file set, e.g. "pnp.interfaces"
	positions  keyPositions      // where each key is, for Locate; dropped after the compile
	phoneByMAC map[phone.MAC]int // index into Phones
}

// Server is [server]: where the appliance lives on the LAN.
type Server struct {
	Interface string     `toml:"interface"` // default: the interface of the default route
	Advertise netip.Addr `toml:"advertise"` // default: the interface's first IPv4
	StateDir  string     `toml:"state_dir"` // default /var/lib/snomprov
	LogLevel  string     `toml:"log_level"` // debug | info | warn | error; default info
}

// HTTP is [http]: the settings and firmware server.
type HTTP struct {
	Listen string `toml:"listen"` // default ":80" (":8080" on the embedded defaults)
	// URL is the setting server URL handed to phones by PnP and DHCP. Empty
	// means http://<advertise>[:port]/. It may name a file and may hold the
	// placeholders {mac}, {phone_type} and {firmware_version}.
	URL           string `toml:"url"`
	FirmwareDir   string `toml:"firmware_dir"`   // served under /firmware/
	FilesDir      string `toml:"files_dir"`      // optional files served verbatim
	UnknownPhones string `toml:"unknown_phones"` // generic | deny | allow
	Username      string `toml:"username"`       // Basic auth, with Password
	Password      string `toml:"password"`
	// HTTPSListen is the HTTPS listener beside the plain one: default
	// ":443" (":8443" on the embedded defaults); empty turns HTTPS off.
	HTTPSListen string `toml:"https_listen"`
	// TLSCert and TLSKey replace the certificate snomprov makes for
	// itself in state_dir/tls.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// VerifyMAC compares the LAN MAC of a device asking for a configured
	// phone's own file with that phone's MAC: off | log | enforce.
	VerifyMAC string `toml:"verify_mac"`
	// CleartextModels and CleartextPhones are the explicit exceptions whose
	// own file (with its secrets) is served over plain HTTP too.
	CleartextModels []string    `toml:"cleartext_models"`
	CleartextPhones []phone.MAC `toml:"cleartext_phones"`
	// ClientCert asks phones for their factory device certificate before
	// their own file: off | optional | require. ClientCA is the CA file
	// (Snom's device CA) it must chain to.
	ClientCert string `toml:"client_cert"`
	ClientCA   string `toml:"client_ca"`
	// TrustedProxies may set X-Forwarded-For and X-Forwarded-Proto;
	// AllowedNetworks, when set, are the only clients given phone files.
	TrustedProxies  []netip.Prefix `toml:"trusted_proxies"`
	AllowedNetworks []netip.Prefix `toml:"allowed_networks"`
}

// PnP is [pnp]: the SIP multicast plug-and-play responder.
type PnP struct {
	Enabled    bool     `toml:"enabled"`    // default true
	Interfaces []string `toml:"interfaces"` // default: [server.interface]
	// Answer decides who gets a NOTIFY: snom (Snom OUI or vendor="snom"),
	// configured (MACs in [[phones]]), all, or none (record only). Default
	// snom with a config file, none on the embedded defaults.
	Answer string `toml:"answer"`
}

// DHCP is [dhcp]: the optional DHCP server. Off unless enabled. Its
// DHCPSubnetOptions are the primary subnet's, the LAN interface's.
type DHCP struct {
	Enabled bool `toml:"enabled"`
	DHCPSubnetOptions
	// ConflictProbe is how long to wait for an ICMP echo reply from an
	// address that was never leased before offering it, as dnsmasq does;
	// default 300ms, "0s" turns the check off.
	ConflictProbe     Duration `toml:"conflict_probe"`
	Serve             string   `toml:"serve"` // all | phones
	AllowOtherServers bool     `toml:"allow_other_servers"`
	// Authoritative ACKs an INIT-REBOOT for a free address from a client
	// the server has no record of (dnsmasq's dhcp-authoritative); off, such
	// a client gets silence (RFC 2131 §4.3.2).
	Authoritative bool `toml:"authoritative"`
	// Subnets are more subnets served beside the LAN's ([[dhcp.subnets]]):
	// VLAN sub-interfaces of a trunk port, or networks behind DHCP relays.
	Subnets []DHCPSubnet `toml:"subnets"`
}

// SubnetsOnly reports a [dhcp] that serves only its [[dhcp.subnets]] and
// leaves the LAN to its own server: no pool of its own (dhcp.Prepare
// accepts that only beside subnets).
func (d *DHCP) SubnetsOnly() bool { return d.Pool == "" && len(d.Subnets) > 0 }

// DHCPSubnetOptions are what one subnet hands out: the keys of [dhcp] and
// of each [[dhcp.subnets]] entry alike.
type DHCPSubnetOptions struct {
	Pool           string       `toml:"pool"` // "10.0.0.100-10.0.0.199"
	Router         netip.Addr   `toml:"router"`
	DNS            []netip.Addr `toml:"dns"`
	Domain         string       `toml:"domain"`
	NTP            []netip.Addr `toml:"ntp"`
	TimeOffset     Duration     `toml:"time_offset"` // option 2, e.g. "1h" or "-7h"
	LeaseTime      Duration     `toml:"lease_time"`  // default 12h
	UpdateServer   string       `toml:"update_server"`
	UpdateFilename string       `toml:"update_filename"`
	VendorOptions  bool         `toml:"vendor_options"`
	VoiceVLAN      int          `toml:"voice_vlan"`
	VoicePriority  int          `toml:"voice_priority"`
	// Reservations pin addresses to MACs ([[dhcp.reservations]]).
	Reservations []DHCPReservation `toml:"reservations"`
	// Options are more DHCP options ([[dhcp.options]]), checked by package dhcp.
	Options []DHCPOption `toml:"options"`
}

// DHCPSubnet is one [[dhcp.subnets]] entry. With interface set it is a
// local subnet (a VLAN sub-interface with an address in network); without,
// a relayed one, served to relays whose giaddr is in network. Keys it
// leaves out are [dhcp]'s (dns, domain, ntp, time_offset, lease_time, the
// phone options; options entries by code), except network, interface,
// pool, router and reservations, which are the subnet's own; plan does
// that inheritance, package dhcp checks the result.
type DHCPSubnet struct {
	Network   netip.Prefix `toml:"network"` // "10.20.0.0/24"
	Interface string       `toml:"interface"`
	DHCPSubnetOptions
}

// DHCPOption is one [[dhcp.options]] entry: option code, value type, value
// as text, and whether to send it to clients that do not ask for it.
// Its fields match dhcp.ExtraOption.
type DHCPOption struct {
	Code   int    `toml:"code"`
	Type   string `toml:"type"`
	Value  string `toml:"value"`
	Always bool   `toml:"always"`
}

// DHCPReservation pins an address to a MAC.
type DHCPReservation struct {
	MAC      phone.MAC  `toml:"mac"`
	IP       netip.Addr `toml:"ip"`
	Hostname string     `toml:"hostname"`
}

// Provision is [provision]: how settings files are written.
type Provision struct {
	// DefaultPerm is the perm flag of every setting that does not set its
	// own: R (read-only for the user), RW (user may change, next provisioning
	// overwrites), ! (written only while the user has not changed it). Default R.
	DefaultPerm string `toml:"default_perm"`
	// PinSettingServer says which phones get setting_server = the
	// appliance's URL, so they stop asking the cloud redirection service
	// first: "configured" (default: only phones in [[phones]], in their own
	// file), "all" (every phone that fetches a general file, including
	// phones another system provisions), or "off". true means
	// "configured", false "off".
	PinSettingServer PinPolicy `toml:"pin_setting_server"`
}

// PinPolicy is provision.pin_setting_server.
type PinPolicy string

// provision.pin_setting_server values.
const (
	PinConfigured PinPolicy = "configured"
	PinAll        PinPolicy = "all"
	PinOff        PinPolicy = "off"
)

// UnmarshalTOML accepts the three names and, as before they existed, a
// boolean: true is the safe "configured", false "off".
func (p *PinPolicy) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case bool:
		*p = PinOff
		if v {
			*p = PinConfigured
		}
		return nil
	case string:
		switch q := PinPolicy(v); q {
		case PinConfigured, PinAll, PinOff:
			*p = q
			return nil
		}
	}
	return fmt.Errorf(`%v is not allowed; use "configured" (phones in [[phones]]), "all" (every phone, including ones another system provisions) or "off"`, tomlValue(v))
}

func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// Status is [status]: the status page, API and metrics.
type Status struct {
	AdminUser     string   `toml:"admin_user"`     // default "admin" when a password is set
	AdminPassword string   `toml:"admin_password"` // protects the status page and API when set
	StaleAfter    Duration `toml:"stale_after"`    // default 24h
}

// Inventory is [inventory]: where the phone records go. The default is the
// file store in state_dir; a PostgreSQL URL shares one inventory between
// appliances (inventory/pgstore validates both keys).
type Inventory struct {
	URL  string `toml:"url"`  // postgres://user:pass@host/db or key=value; empty: phones.json in state_dir
	Site string `toml:"site"` // this appliance's site, e.g. "berlin"; required with url
}

// Model is [models.<type>]: what every phone of one type gets.
type Model struct {
	Firmware    string   `toml:"firmware"`     // a file in firmware_dir, or an absolute URL
	FirmwareUXM string   `toml:"firmware_uxm"` // expansion-module image, same rules
	Rollout              // canaries for firmware
	Settings    Settings `toml:"settings"`
	FKeys       FKeys    `toml:"fkeys"`
	Modules     []string `toml:"modules"` // expansion modules in chain order, e.g. ["D7"]
	// DECT is a DECT base's firmware (family dect), written into its settings.
	DECT      DECTFirmware     `toml:"dect"`
	Phonebook []PhonebookEntry `toml:"phonebook"` // added to the global [[phonebook]]
	Containers
}

// Rollout is how a new firmware image of a model or group goes out: to
// the canaries first, to the rest once every canary runs it (package
// rollout decides). No canaries: to every phone at once.
type Rollout struct {
	Canaries []phone.MAC `toml:"canaries"`
	// CanaryTimeout is how long a canary may take from fetching the image
	// to reporting its version before it holds the rollout; default 1h.
	CanaryTimeout Duration `toml:"canary_timeout"`
}

// Group is [groups.<name>]: phones that share a firmware image, listed
// here by MAC or naming the group in their own group key (or CSV column).
type Group struct {
	Phones      []phone.MAC `toml:"phones"`
	Firmware    string      `toml:"firmware"`     // as [models.X] firmware; wins over it for the members
	FirmwareUXM string      `toml:"firmware_uxm"` // as [models.X] firmware_uxm
	Rollout
}

// Phone is one [[phones]] entry.
type Phone struct {
	MAC         phone.MAC        `toml:"mac"`
	Model       string           `toml:"model"` // optional; else taken from the request
	Description string           `toml:"description"`
	Group       string           `toml:"group"`        // a [groups.<name>] it belongs to
	Firmware    string           `toml:"firmware"`     // this phone's image; wins over its group's and model's
	FirmwareUXM string           `toml:"firmware_uxm"` // this phone's expansion-module image
	Settings    Settings         `toml:"settings"`
	FKeys       FKeys            `toml:"fkeys"`
	Modules     []string         `toml:"modules"`   // overrides the model's modules
	Phonebook   []PhonebookEntry `toml:"phonebook"` // the phone's own book
	Lines       []Line           `toml:"lines"`     // SIP accounts, written as user_* settings (lines.go)
	Containers
}

// PhonebookEntry is one [[phonebook]] entry, rendered in <tbook complete="true">.
type PhonebookEntry struct {
	Name       string `toml:"name"`
	FirstName  string `toml:"first_name"`
	LastName   string `toml:"last_name"`
	Number     string `toml:"number"`
	NumberType string `toml:"number_type"` // <number_type>, e.g. "sip", "mobile"
	Context    string `toml:"context"`     // default "active"
	Type       string `toml:"type"`        // none | friends | colleagues | family | vip | deny; default none
}

// PhonebookTypes are the values of a phone-book entry's type.
var PhonebookTypes = []string{"none", "friends", "colleagues", "family", "vip", "deny"}

// Settings maps a Snom setting name to its value(s).
type Settings map[string]Setting

// Setting is one phone setting. In TOML it is written as
//
//	name = "value"                                   plain value, default perm
//	name = { value = "x", perm = "RW" }              with its own perm
//	name = { 1 = "101", 2 = "102" }                  indexed (idx="1", idx="2")
//	name = { 1 = { value = "101", perm = "RW" } }    indexed with perm
//
// Integers and booleans are accepted and written as text (true → on).
type Setting struct {
	Value   string
	Perm    string // empty: [provision] default_perm
	Indexed map[int]IndexedValue
}

// IndexedValue is one idx of an indexed setting.
type IndexedValue struct {
	Value string
	Perm  string
}

// FKeys maps a 0-based function key index to the key.
type FKeys map[int]FKey

// FKey is one function key. In TOML either a plain string, "blf sip:102@pbx",
// or a table { value = "...", label = "...", context = "1", perm = "RW" }
// with any of the attributes below.
type FKey struct {
	Value       string
	Label       string
	Context     string // default "active"
	Perm        string
	ShortLabel  string // short_label
	LP          string // lp: the long-press action
	CLP         string // clp: "1" marks lp as changed; default "1" when lp is set
	DefaultText string // default_text: the self-labelling key's text without a label
	XML         string // xml: child XML of <fkey> (an XML definition), written as XML
}

// Duration is a time.Duration written as a string ("12h", "90s"). Bare
// integers are rejected: TOML would otherwise read them as nanoseconds.
type Duration struct{ time.Duration }
