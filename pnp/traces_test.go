package pnp

import "strings"

// trace is one SUBSCRIBE as documented in docs/snom-provisioning.md §1.2 and
// §1.7. {ip} is the phone's address; lines end in CRLF when built.
type trace struct {
	name    string
	lines   []string
	mac     string // expected MAC
	model   string // expected Snom model ("" when none)
	fw      string
	snom    bool // answered under answer=snom
	vendor  string
	profile string
}

var traces = []trace{
	{
		name: "snom desk 7.x, no branch (official trace)",
		lines: []string{
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
		mac: "00135E874B49", fw: "7.1.19", vendor: "OEM", profile: "device",
		snom: false, // 00:13:5E is not a Snom OUI and vendor is OEM
	},
	{
		name: "snompnpd re-serialised, host fake",
		lines: []string{
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
		mac: "000413874B49", model: "snom720", fw: "7.1.19", vendor: "snom", profile: "device", snom: true,
	},
	{
		name: "snom D120 (MikoPBX vector)",
		lines: []string{
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
		mac: "000413A11FA7", model: "snomD120", fw: "10.1.39.11", vendor: "snom", profile: "device", snom: true,
	},
	{
		name: "snom M700 DECT, From sip:512@ip",
		lines: []string{
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
		mac: "000413600001", model: "snomM700", fw: "03.23.0005", vendor: "snom", profile: "device", snom: true,
	},
	{
		name: "Yealink, MAC directly followed by the digits",
		lines: []string{
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
		mac: "805EC0123456", fw: "34.72.14.6", vendor: "Yealink", profile: "device",
	},
	{
		name: "Grandstream, MAC%3A upper case",
		lines: []string{
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
		mac: "C074AD112233", fw: "1.0.5.33", vendor: "Grandstream", profile: "device",
	},
	{
		name: "Planet-style MAC= in To only, compact headers, lower-case hex",
		lines: []string{
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
		mac: "00304FA99948", fw: "1.0", vendor: "PLANET", profile: "device",
	},
	{
		name: "sipp scenario: bare twelve hex digits",
		lines: []string{
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
		mac: "000413A00000", model: "snomD785", fw: "10.1.33.33", vendor: "snom", profile: "device", snom: true,
	},
}

// build renders a trace for the phone at ip with CRLF line ends.
func (tr trace) build(ip string) []byte {
	const sep = "\r\n"
	return []byte(strings.ReplaceAll(strings.Join(tr.lines, sep), "{ip}", ip) + sep + sep)
}

// withHeader returns a copy of the trace with header name's value replaced
// (or removed when value is "").
func (tr trace) withHeader(name, value string) trace {
	out := tr
	out.lines = nil
	for _, l := range tr.lines {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			if value == "" {
				continue
			}
			l = name + ": " + value
		}
		out.lines = append(out.lines, l)
	}
	return out
}

// withStartLine replaces the request line.
func (tr trace) withStartLine(line string) trace {
	out := tr
	out.lines = append([]string{line}, tr.lines[1:]...)
	return out
}
