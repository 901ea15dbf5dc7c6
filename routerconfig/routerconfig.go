// Package routerconfig writes the DHCP server snippet that points Snom
// phones at snomprov, for sites where the router keeps serving DHCP and
// snomprov runs with [dhcp] enabled = false.
//
// Every snippet sends option 66 (the setting server URL) and, if given,
// option 67 (a file name joined to it), and sends them even when the phone
// did not ask for them: RFC-strict servers otherwise drop options missing
// from the request list, the most common reason "option 66 is configured
// but never reaches the phone". Where the server can match clients, only
// Snom phones get them: vendor class (option 60) starting with "snom", or
// a Snom MAC prefix (00:04:13, 00:08:7B) for old firmware without option 60.
package routerconfig

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Params is what a snippet needs to know about this appliance.
type Params struct {
	// SettingURL is the option 66 value, the appliance's setting server
	// URL, e.g. "http://192.168.1.5/". Required.
	SettingURL string
	// Filename is the option 67 value; the phone joins it to SettingURL.
	// Optional: snomprov's URL already names everything the phone needs.
	Filename string
	// Subnet is the LAN the phones are on. MikroTik and Windows attach
	// options to a DHCP network or scope and need it; the others ignore it.
	Subnet netip.Prefix
}

// The targets Generate knows.
const (
	Dnsmasq  = "dnsmasq"
	Kea      = "kea"
	ISC      = "isc"
	MikroTik = "mikrotik"
	Windows  = "windows"
)

// Targets lists the supported targets in the order docs and help show them.
func Targets() []string { return []string{Dnsmasq, Kea, ISC, MikroTik, Windows} }

// maxOptionLen is the most a single DHCP option can carry.
const maxOptionLen = 255

// snomOUIs are the MAC prefixes of Snom phones (desk phones, DECT bases).
var snomOUIs = [][3]byte{{0x00, 0x04, 0x13}, {0x00, 0x08, 0x7b}}

// Generate returns the snippet for target, ready to paste into that DHCP
// server's configuration.
func Generate(target string, p Params) (string, error) {
	if err := p.validate(target); err != nil {
		return "", err
	}
	switch target {
	case Dnsmasq:
		return dnsmasq(p), nil
	case Kea:
		return kea(p), nil
	case ISC:
		return isc(p), nil
	case MikroTik:
		return mikrotik(p), nil
	case Windows:
		return windows(p), nil
	}
	return "", fmt.Errorf("unknown router type %q: use one of %s", target, strings.Join(Targets(), ", "))
}

func (p Params) validate(target string) error {
	if !slices.Contains(Targets(), target) {
		return fmt.Errorf("unknown router type %q: use one of %s", target, strings.Join(Targets(), ", "))
	}
	if p.SettingURL == "" {
		return fmt.Errorf("no setting URL for option 66: set [server] advertise or [http] url in the config")
	}
	u, err := url.Parse(p.SettingURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("setting URL %q for option 66 is not an absolute http:// or https:// URL: fix [http] url in the config", p.SettingURL)
	}
	if err := checkValue("setting URL", p.SettingURL, target); err != nil {
		return err
	}
	if p.Filename != "" {
		if err := checkValue("file name for option 67", p.Filename, target); err != nil {
			return err
		}
	}
	if (target == MikroTik || target == Windows) && !p.Subnet.IsValid() {
		return fmt.Errorf("%s attaches options to a DHCP network: give the phones' subnet, e.g. 192.168.1.0/24", target)
	}
	if p.Subnet.IsValid() && !p.Subnet.Addr().Is4() {
		return fmt.Errorf("subnet %s is not IPv4: options 66/67 are DHCPv4 options", p.Subnet)
	}
	return nil
}

// checkValue rejects what cannot be quoted the same way in every target's
// syntax: whitespace and control characters, quotes, backslashes, "$"
// (expanded inside RouterOS and PowerShell strings), "," (a list separator
// for dnsmasq and Kea) and ";". URLs can always avoid them by
// percent-encoding, so rejecting is safer than five escaping schemes.
func checkValue(what, v, target string) error {
	if len(v) > maxOptionLen {
		return fmt.Errorf("%s is %d bytes; a DHCP option holds at most %d: use a shorter URL", what, len(v), maxOptionLen)
	}
	for _, r := range v {
		if r <= ' ' || r > '~' || strings.ContainsRune("\"'\\$,;`", r) {
			return fmt.Errorf("%s %q contains %q, which cannot be written safely into a %s config: percent-encode it (e.g. %%20 for a space)", what, v, r, target)
		}
	}
	return nil
}

// ouiColon formats a Snom OUI as "00:04:13".
func ouiColon(o [3]byte) string { return fmt.Sprintf("%02x:%02x:%02x", o[0], o[1], o[2]) }

// ouiHex formats a Snom OUI as "000413" (upper case for Windows).
func ouiHex(o [3]byte) string { return fmt.Sprintf("%02X%02X%02X", o[0], o[1], o[2]) }

func header(b *strings.Builder, comment string, p Params, where string) {
	fmt.Fprintf(b, "%s snomprov: point Snom phones at %s (DHCP option 66", comment, p.SettingURL)
	if p.Filename != "" {
		fmt.Fprintf(b, ", option 67 %s", p.Filename)
	}
	fmt.Fprintf(b, ").\n%s %s\n", comment, where)
}

func dnsmasq(p Params) string {
	var b strings.Builder
	header(&b, "#", p, "Add to dnsmasq.conf (or a file in /etc/dnsmasq.d/) and restart dnsmasq.")
	b.WriteString("# Phones: vendor class (option 60) containing \"snom\", or a Snom MAC prefix.\n")
	b.WriteString("dhcp-vendorclass=set:snom,snom\n")
	for _, o := range snomOUIs {
		fmt.Fprintf(&b, "dhcp-mac=set:snom,%s:*:*:*\n", ouiColon(o))
	}
	b.WriteString("# -force: send even when the phone's request list (option 55) lacks them.\n")
	fmt.Fprintf(&b, "dhcp-option-force=tag:snom,66,\"%s\"\n", p.SettingURL)
	if p.Filename != "" {
		fmt.Fprintf(&b, "dhcp-option-force=tag:snom,67,\"%s\"\n", p.Filename)
	}
	return b.String()
}

func kea(p Params) string {
	var b strings.Builder
	header(&b, "//", p, `Paste into the "Dhcp4" object of kea-dhcp4.conf, e.g. right after "Dhcp4": {`)
	b.WriteString("// If you already have \"client-classes\", add just the class to that list.\n")
	b.WriteString("// Phones: vendor class (option 60) starting with \"snom\", or a Snom MAC prefix.\n")
	b.WriteString("// always-send: even when the phone's request list (option 55) lacks them.\n")
	b.WriteString("\"client-classes\": [\n  {\n    \"name\": \"snom\",\n")
	fmt.Fprintf(&b, "    \"test\": \"%s\",\n", snomTest())
	b.WriteString("    \"option-data\": [\n")
	for i, o := range phoneOptions(p) {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "      { \"name\": \"%s\", \"code\": %d, \"data\": \"%s\", \"always-send\": true }", o["name"], o["code"], o["data"])
	}
	b.WriteString("\n    ]\n  }\n],\n")
	return b.String()
}

func isc(p Params) string {
	var b strings.Builder
	header(&b, "#", p, "Add to dhcpd.conf (top level, outside any subnet) and restart isc-dhcp-server.")
	b.WriteString("# Phones: vendor class (option 60) starting with \"snom\", or a Snom MAC prefix.\n")
	b.WriteString("class \"snom\" {\n")
	b.WriteString("  match if substring(option vendor-class-identifier, 0, 4) = \"snom\"")
	for _, o := range snomOUIs {
		fmt.Fprintf(&b, "\n        or substring(hardware, 1, 3) = %s", ouiColon(o))
	}
	b.WriteString(";\n")
	fmt.Fprintf(&b, "  option tftp-server-name \"%s\";\n", p.SettingURL)
	if p.Filename != "" {
		fmt.Fprintf(&b, "  option bootfile-name \"%s\";\n", p.Filename)
	}
	b.WriteString("  # Send 66/67 (hex 42, 43) even when the phone's request list lacks them.\n")
	b.WriteString("  if exists dhcp-parameter-request-list {\n")
	b.WriteString("    option dhcp-parameter-request-list = concat(option dhcp-parameter-request-list, 42, 43);\n")
	b.WriteString("  }\n}\n")
	return b.String()
}

func mikrotik(p Params) string {
	var b strings.Builder
	header(&b, "#", p, "Paste into a RouterOS 7 terminal (RouterOS 6: write the values as '...' without the s).")
	b.WriteString("# The options go to every client of that DHCP network; computers ignore 66/67.\n")
	b.WriteString("/ip dhcp-server option\n")
	fmt.Fprintf(&b, "add name=snomprov-66 code=66 value=\"s'%s'\"\n", p.SettingURL)
	opts := "snomprov-66"
	if p.Filename != "" {
		fmt.Fprintf(&b, "add name=snomprov-67 code=67 value=\"s'%s'\"\n", p.Filename)
		opts += ",snomprov-67"
	}
	b.WriteString("/ip dhcp-server option sets\n")
	fmt.Fprintf(&b, "add name=snomprov options=%s\n", opts)
	b.WriteString("/ip dhcp-server network\n")
	fmt.Fprintf(&b, "set [find address=%s] dhcp-option-set=snomprov\n", p.Subnet.Masked())
	return b.String()
}

func windows(p Params) string {
	var b strings.Builder
	header(&b, "#", p, "Run in an elevated PowerShell on the Windows DHCP server (2012 R2 or later).")
	fmt.Fprintf(&b, "$Scope = '%s'\n", p.Subnet.Masked().Addr())
	b.WriteString("# Phones: vendor class (option 60) starting with \"snom\", or a Snom MAC prefix.\n")
	b.WriteString("Add-DhcpServerv4Class -Name 'snom' -Type Vendor -Data 'snom' -Description 'Snom phones (snomprov)'\n")
	macs := make([]string, 0, len(snomOUIs))
	for _, o := range snomOUIs {
		macs = append(macs, ouiHex(o)+"*")
	}
	fmt.Fprintf(&b, "Add-DhcpServerv4Policy -Name 'snomprov' -ScopeId $Scope -Condition OR -VendorClass EQ,'snom*' -MacAddress EQ,%s\n", strings.Join(macs, ","))
	fmt.Fprintf(&b, "Set-DhcpServerv4OptionValue -ScopeId $Scope -PolicyName 'snomprov' -OptionId 66 -Value '%s'\n", p.SettingURL)
	if p.Filename != "" {
		fmt.Fprintf(&b, "Set-DhcpServerv4OptionValue -ScopeId $Scope -PolicyName 'snomprov' -OptionId 67 -Value '%s'\n", p.Filename)
	}
	return b.String()
}
