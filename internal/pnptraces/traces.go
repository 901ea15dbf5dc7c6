// Package pnptraces holds the SIP PnP SUBSCRIBEs documented in
// docs/snom-provisioning.md (§1.2, §1.7), with what a parser must read from
// each. It exists for tests: the pnp package's unit and namespace tests and
// test/e2e's tests of the real binary send the same documented traces.
package pnptraces

import "strings"

// Trace is one SUBSCRIBE. {ip} in Lines stands for the phone's address.
type Trace struct {
	Name     string
	Lines    []string
	MAC      string // the MAC it names, upper-case hex
	Model    string // the Snom model, "" when none
	Firmware string
	Vendor   string
	Profile  string
	Snom     bool // answered under answer = "snom"
}

// Documented is every trace, in the order of the docs. Tests index it:
// 0 official 7.x (not a Snom OUI, vendor OEM), 1 snompnpd, 2 D120, 3 M700,
// 4 Yealink, 5 Grandstream, 6 Planet, 7 the sipp scenario.
var Documented = []Trace{
	{
		Name: "snom desk 7.x, no branch (official trace)",
		Lines: []string{
			"SUBSCRIBE sip:MAC%3a00135E874B49@intern.snom.de SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;rport",
			"From: <sip:MAC%3a00135E874B49@intern.snom.de>;tag=658512961",
			"To: <sip:MAC%3a00135E874B49@intern.snom.de>",
			"Call-ID: 1930770594@{ip}",
			"CSeq: 1 SUBSCRIBE",
			`Event: ua-profile;profile-type="device";vendor="OEM";model="OEM";version="7.1.19"`,
			"Expires: 0",
			"Accept: application/url",
			"Contact: <sip:{ip}:5060>",
			"Content-Length: 0",
		},
		MAC: "00135E874B49", Firmware: "7.1.19", Vendor: "OEM", Profile: "device",
		Snom: false, // 00:13:5E is not a Snom OUI and vendor is OEM
	},
	{
		Name: "snompnpd re-serialised, host fake",
		Lines: []string{
			"SUBSCRIBE sip:MAC%3a000413874B49@fake SIP/2.0",
			"Event: ua-profile;profile-type=\"device\";vendor=\"snom\";model=\"snom720\";version=\"7.1.19\"",
			"Call-ID: 1930770595@{ip}",
			"To: <sip:MAC%3a000413874B49@fake>",
			"From: <sip:MAC%3a000413874B49@fake>;tag=658512962",
			"Via: SIP/2.0/UDP {ip}:5060;rport",
			"CSeq: 1 SUBSCRIBE",
			"Contact: <sip:{ip}:5060>",
			"Content-Length: 0",
		},
		MAC: "000413874B49", Model: "snom720", Firmware: "7.1.19", Vendor: "snom", Profile: "device", Snom: true,
	},
	{
		Name: "snom D120 (MikoPBX vector)",
		Lines: []string{
			"SUBSCRIBE sip:MAC%3a000413A11FA7@miko.ru SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;rport",
			"From: <sip:MAC%3a000413A11FA7@miko.ru>;tag=1145111611",
			"To: <sip:MAC%3a000413A11FA7@miko.ru>",
			"Call-ID: 1913994428@{ip}",
			"CSeq: 1 SUBSCRIBE",
			`Event: ua-profile;profile-type="device";vendor="snom";model="snomD120";version="10.1.39.11"`,
			"Expires: 0",
			"Accept: application/url",
			"Contact: <sip:{ip}:5060>",
			"User-Agent: snomD120/10.1.39.11",
			"Content-Length: 0",
		},
		MAC: "000413A11FA7", Model: "snomD120", Firmware: "10.1.39.11", Vendor: "snom", Profile: "device", Snom: true,
	},
	{
		Name: "snom M700 DECT, From sip:512@ip",
		Lines: []string{
			"SUBSCRIBE sip:MAC%3a000413600001@224.0.1.75 SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;branch=z9hG4bKl1d23iyadenuaa1jr4vm",
			"Max-Forwards: 70",
			"From: <sip:512@{ip}>;tag=dmrud.mzfyg66",
			"To: <sip:MAC%3a000413600001@224.0.1.75>",
			"Call-ID: 6cm70qdo.o.8i@{ip}",
			"CSeq: 20264 SUBSCRIBE",
			"Contact: <sip:512@{ip}>",
			"Accept: application/url",
			"Allow: INVITE, CANCEL, BYE, ACK, REGISTER, OPTIONS, REFER, SUBSCRIBE, NOTIFY, MESSAGE, INFO, PRACK, UPDATE",
			"Allow-Events: dialog,message-summary",
			`Event: ua-profile;profile-type="device";vendor="snom";model="snomM700";version="03.23.0005"`,
			"Expires: 0",
			"Supported: replaces,100rel",
			"User-Agent: snomM700/03.23.0005 (MAC=000413600001; SER= 00000; HW=255)",
			"Content-Length: 0",
		},
		MAC: "000413600001", Model: "snomM700", Firmware: "03.23.0005", Vendor: "snom", Profile: "device", Snom: true,
	},
	{
		Name: "Yealink, MAC directly followed by the digits",
		Lines: []string{
			"SUBSCRIBE sip:MAC805EC0123456@224.0.1.75 SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK1122334455",
			"From: <sip:MAC805EC0123456@224.0.1.75>;tag=1234567",
			"To: <sip:MAC805EC0123456@224.0.1.75>",
			"Call-ID: 0_2912345678@{ip}",
			"CSeq: 1 SUBSCRIBE",
			"Contact: <sip:MAC805EC0123456@{ip}:5060>",
			`Event: ua-profile;profile-type="device";vendor="Yealink";model="T21D";version="34.72.14.6"`,
			"Accept: application/url",
			"Expires: 0",
			"User-Agent: Yealink SIP-T21P 34.72.14.6",
			"Content-Length: 0",
		},
		MAC: "805EC0123456", Firmware: "34.72.14.6", Vendor: "Yealink", Profile: "device",
	},
	{
		Name: "Grandstream, MAC%3A upper case",
		Lines: []string{
			"SUBSCRIBE sip:MAC%3AC074AD112233@224.0.1.75 SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;branch=z9hG4bK2039482;rport",
			"From: <sip:MAC%3AC074AD112233@224.0.1.75>;tag=999",
			"To: <sip:MAC%3AC074AD112233@224.0.1.75>",
			"Call-ID: 4455@{ip}",
			"CSeq: 2 SUBSCRIBE",
			"Contact: <sip:{ip}:5060>",
			`Event: ua-profile;profile-type="device";vendor="Grandstream";model="GRP2612W";version="1.0.5.33"`,
			"Expires: 0",
			"Content-Length: 0",
		},
		MAC: "C074AD112233", Firmware: "1.0.5.33", Vendor: "Grandstream", Profile: "device",
	},
	{
		Name: "Planet-style MAC= in To only, compact headers, lower-case hex",
		Lines: []string{
			"SUBSCRIBE sip:224.0.1.75 SIP/2.0",
			"v: SIP/2.0/UDP {ip}:5060;branch=z9hG4bKplanet",
			"f: <sip:MAC=00304fa99948@224.0.1.75>;tag=55",
			"t: <sip:MAC=00304fa99948@224.0.1.75>",
			"i: planet-1@{ip}",
			"CSeq: 1 SUBSCRIBE",
			"m: <sip:{ip}:5060>",
			`o: ua-profile;profile-type="device";vendor="PLANET";model="VIP-2140PT";version="1.0"`,
			"Content-Length: 0",
		},
		MAC: "00304FA99948", Firmware: "1.0", Vendor: "PLANET", Profile: "device",
	},
	{
		Name: "sipp scenario: bare twelve hex digits",
		Lines: []string{
			"SUBSCRIBE sip:000413A00000@224.0.1.75 SIP/2.0",
			"Via: SIP/2.0/UDP {ip}:5060;rport;branch=z9hG4bK-1-0",
			"From: <sip:000413A00000@224.0.1.75>;tag=1SIPpTag01",
			"To: <sip:000413A00000@224.0.1.75>",
			"Call-ID: 1-1@{ip}",
			"CSeq: 1 SUBSCRIBE",
			"Max-Forwards: 70",
			"Contact: <sip:{ip}:5060>",
			`Event: ua-profile;profile-type="device";vendor="snom";model="snomD785";version="10.1.33.33"`,
			"Accept: application/url",
			"Expires: 0",
			"User-Agent: snomD785/10.1.33.33",
			"Content-Length: 0",
		},
		MAC: "000413A00000", Model: "snomD785", Firmware: "10.1.33.33", Vendor: "snom", Profile: "device", Snom: true,
	},
}

// Build renders the trace for the phone at ip, with CRLF line ends.
func (tr Trace) Build(ip string) []byte {
	const sep = "\r\n"
	return []byte(strings.ReplaceAll(strings.Join(tr.Lines, sep), "{ip}", ip) + sep + sep)
}

// Header returns the value of the trace's header name ("" when absent).
func (tr Trace) Header(name string) string {
	for _, l := range tr.Lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WithHeader returns a copy with header name's value replaced, or the
// header removed when value is "".
func (tr Trace) WithHeader(name, value string) Trace {
	out := tr
	out.Lines = nil
	for _, l := range tr.Lines {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			if value == "" {
				continue
			}
			l = name + ": " + value
		}
		out.Lines = append(out.Lines, l)
	}
	return out
}

// WithStartLine returns a copy with another request line.
func (tr Trace) WithStartLine(line string) Trace {
	out := tr
	out.Lines = append([]string{line}, tr.Lines[1:]...)
	return out
}
