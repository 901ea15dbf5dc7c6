// Package doctor checks a LAN for Snom provisioning and prints a plain
// verdict, with the fix for each problem and a recommended mode.
//
// What it sends on the wire, all out of Options.Interface only:
//
//   - DHCP: two broadcast DISCOVERs through an AF_PACKET socket (root or
//     CAP_NET_RAW): one that looks like a Snom phone (random 00:04:13 chaddr,
//     option 60 = snomD785) and one that looks like a PC (random locally
//     administered chaddr, no vendor class), each sent again once halfway
//     through the wait. OFFERs are collected for Options.Timeout, extended
//     by up to 5 s while a server has answered only one of the two. No REQUEST
//     is ever sent, so no lease is taken. A DHCP server running on this
//     same host does not see these frames (AF_PACKET output is not looped
//     back); the port check below names it instead.
//   - PnP: one Snom SUBSCRIBE to 224.0.1.75:5060 (TTL 1, IP_MULTICAST_IF =
//     the interface, loopback on so a responder on this host answers too)
//     from a random Snom MAC, retransmitted on timer E until someone answers;
//     every NOTIFY is answered with 200 OK. Answers are collected for
//     Options.Timeout. Responders record this probe like a phone.
//   - Firmware (nothing sent): the staged rollouts of the configuration and
//     the phones the loop guard holds, from the appliance's inventory.
//   - HTTP: one GET of <type>.htm (per the seed's URL rules) with a Snom
//     User-Agent for each distinct setting URL announced by DHCP or PnP and
//     for Options.SelfURL.
//
// Locally it reads /proc/thread-self/net/{udp,udp6,tcp,tcp6} and
// /proc/*/fd to name the processes holding 67/udp, 5060/udp, 80/tcp (and
// SelfURL's port).
//
// Recommended mode, from what answered:
//   - no DHCP server answers at all: "snomprov DHCP" ([dhcp] enabled, serve all);
//   - a DHCP server answers PCs but ignores Snom phones: "phones-only DHCP"
//     ([dhcp] enabled, serve = "phones");
//   - a DHCP server answers phones: "PnP only" when multicast works and no
//     other PnP responder competes, else "configure your router" (option 66
//     to this appliance; see `snomprov router-config`).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/internal/netif"
	"github.com/snomprov/snomprov/rollout"
	"github.com/snomprov/snomprov/simulate"
)

// DefaultTimeout is how long OFFERs and NOTIFYs are collected. dnsmasq
// (in most home routers) pings an address for 3 s before offering it and
// handles one such DISCOVER at a time: measured in test/e2e, the OFFER to
// the second DISCOVER arrived 6.3 s after it was sent.
const DefaultTimeout = 7 * time.Second

// Options configure Run.
type Options struct {
	Interface string
	SelfURL   string        // this appliance's setting URL, if it runs; e.g. http://10.0.0.1/
	Timeout   time.Duration // collection window for DHCP and PnP; default 7 s
	Model     string        // sample phone type; default snomD785
	// HTTPS: the appliance's HTTPS URL (the bootstrap's target), its
	// certificate chain file and the CA phones are to trust; empty: not
	// checked.
	HTTPSURL, CertFile, CAFile string
	// Firmware is the appliance's rollouts and phones, when its inventory
	// could be read; nil: not checked.
	Firmware *Firmware
	// LANNotServed: the appliance's [dhcp] has no pool, so it serves only
	// [[dhcp.subnets]] and the LAN's DHCP is another server's by design.
	LANNotServed bool
}

// Mode is the recommended way to get phones to snomprov.
type Mode string

// Recommended modes.
const (
	ModeSnomprovDHCP   Mode = "snomprov DHCP"
	ModePhonesOnlyDHCP Mode = "phones-only DHCP"
	ModePnPOnly        Mode = "PnP only"
	ModeRouter         Mode = "configure your router"
)

// Level of a finding.
type Level string

// Finding levels.
const (
	Info    Level = "ok"
	Warning Level = "warn"
	Problem Level = "PROBLEM"
)

// Finding is one line of the verdict.
type Finding struct {
	Check  string `json:"check"` // interface, dhcp, pnp, http, ports
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Responder is one PnP responder.
type Responder struct {
	simulate.PnPAnswer
	Self bool `json:"self"`
}

// URLCheck is the HTTP check of one setting URL.
type URLCheck struct {
	SettingURL string   `json:"setting_url"`
	Fetched    string   `json:"fetched"`
	Sources    []string `json:"sources"` // who announced it: "dhcp 10.0.0.1", "pnp 10.0.0.2", "self"
	Status     int      `json:"status,omitempty"`
	OK         bool     `json:"ok"`
	Detail     string   `json:"detail"`
}

// Report is everything doctor found.
type Report struct {
	Interface      string            `json:"interface"`
	Up             bool              `json:"up"`
	Multicast      bool              `json:"multicast"`
	Addresses      []netip.Addr      `json:"addresses"`
	DHCPServers    []DHCPServer      `json:"dhcp_servers"`
	Responders     []Responder       `json:"pnp_responders"`
	URLs           []URLCheck        `json:"urls"`
	Ports          []PortOwner       `json:"ports"`
	Rollouts       []rollout.Summary `json:"rollouts,omitempty"`
	Looping        []LoopingPhone    `json:"looping_phones,omitempty"`
	Findings       []Finding         `json:"findings"`
	Mode           Mode              `json:"mode"`
	Recommendation string            `json:"recommendation"`
}

// Problems counts the findings at level Problem.
func (r Report) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Level == Problem {
			n++
		}
	}
	return n
}

// ErrProblems is wrapped by Run's error when the LAN has problems.
var ErrProblems = errors.New("doctor found problems")

// Run checks the LAN on o.Interface, prints the verdict to w and returns
// the report; the error wraps ErrProblems if any check found a problem.
func Run(ctx context.Context, o Options, w io.Writer) (Report, error) {
	rep := Report{Interface: o.Interface}
	if o.Interface == "" {
		return rep, errors.New("doctor: no interface given; name the phones' LAN interface, e.g. eth0")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Model == "" {
		o.Model = simulate.DefaultModel
	}
	d := &doctor{o: o, rep: &rep, local: localAddrs()}
	if o.SelfURL != "" {
		if u, err := url.Parse(o.SelfURL); err == nil {
			d.selfHost = u.Hostname()
		}
	}
	fmt.Fprintf(w, "Checking %s (collecting DHCP and PnP answers for %s)...\n", o.Interface, o.Timeout)

	ifi, ok := d.checkInterface()
	// Before the probes: the PnP probe itself binds 5060/udp when free.
	d.checkPorts()
	var wg sync.WaitGroup
	var dhcpErr, pnpErr error
	var responders []simulate.PnPAnswer
	if ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.DHCPServers, dhcpErr = discoverAll(ctx, o.Interface, o.Model, o.Timeout)
		}()
		if src := firstIPv4(rep.Addresses); src.IsValid() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := simulate.Identity{MAC: simulate.RandomSnomMAC(), Model: o.Model, Firmware: simulate.DefaultFirmware}
				responders, pnpErr = simulate.ProbePnP(ctx, simulate.PnPProbe{Interface: ifi, Source: src, Phone: id, Wait: o.Timeout})
			}()
		}
	}
	wg.Wait()
	for _, r := range responders {
		rep.Responders = append(rep.Responders, Responder{PnPAnswer: r, Self: d.isSelf(r.Responder)})
	}
	for i := range rep.DHCPServers {
		s := &rep.DHCPServers[i]
		s.Self = d.isSelf(s.ServerID) || d.isSelf(s.From)
	}
	if ok {
		d.judgeDHCP(dhcpErr)
		d.judgePnP(pnpErr, firstIPv4(rep.Addresses).IsValid())
		d.checkURLs(ctx)
	}
	d.checkTLS(ctx)
	d.checkFirmware()
	d.recommend()
	d.print(w)
	if n := rep.Problems(); n > 0 {
		return rep, fmt.Errorf("%w: %d problem(s) on %s", ErrProblems, n, o.Interface)
	}
	return rep, nil
}

type doctor struct {
	o        Options
	rep      *Report
	local    map[netip.Addr]bool
	selfHost string
	// dhcpUnknown: the DHCP check could not run, so "no server answered"
	// means nothing and no mode can be recommended from it.
	dhcpUnknown bool
}

func (d *doctor) add(check string, l Level, detail, fix string) {
	d.rep.Findings = append(d.rep.Findings, Finding{Check: check, Level: l, Detail: detail, Fix: fix})
}

func (d *doctor) isLocal(a netip.Addr) bool { return a.IsValid() && d.local[a] }

// isSelf: this host, or the appliance SelfURL names (doctor may run on
// another machine of the LAN).
func (d *doctor) isSelf(a netip.Addr) bool {
	return d.isLocal(a) || (a.IsValid() && d.selfHost != "" && a.String() == d.selfHost)
}

// pointsAtSelf says whether a URL names this appliance.
func (d *doctor) pointsAtSelf(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return false
	}
	if d.selfHost != "" && strings.EqualFold(u.Hostname(), d.selfHost) {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && d.isLocal(a)
}

func localAddrs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().Unmap()] = true
		}
	}
	return m
}

func firstIPv4(as []netip.Addr) netip.Addr {
	for _, a := range as {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

func (d *doctor) checkInterface() (*net.Interface, bool) {
	name := d.o.Interface
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		d.add("interface", Problem, fmt.Sprintf("interface %q not found (%v)", name, err), "name an existing interface; list them with `ip link`")
		return nil, false
	}
	d.rep.Up = ifi.Flags&net.FlagUp != 0
	d.rep.Multicast = ifi.Flags&net.FlagMulticast != 0
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			d.rep.Addresses = append(d.rep.Addresses, p.Addr())
		}
	}
	if !d.rep.Up {
		d.add("interface", Problem, name+" is down", "bring it up: ip link set "+name+" up")
		return ifi, false
	}
	if !d.rep.Multicast {
		d.add("interface", Problem, name+" has no MULTICAST flag: PnP cannot work on it", "ip link set "+name+" multicast on (or use DHCP option 66 instead of PnP)")
	}
	if len(d.rep.Addresses) == 0 {
		d.add("interface", Problem, name+" has no IPv4 address: phones cannot reach this appliance", "give "+name+" a static IPv4 address on the phones' LAN")
	}
	if d.rep.Multicast && len(d.rep.Addresses) > 0 {
		d.add("interface", Info, fmt.Sprintf("%s is up, MULTICAST, IPv4 %s", name, netif.JoinAddrs(d.rep.Addresses)), "")
	}
	return ifi, true
}

func (d *doctor) checkPorts() {
	tcp := []int{80}
	if u, err := url.Parse(d.o.SelfURL); err == nil && u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err == nil && p != 80 {
			tcp = append(tcp, p)
		}
	}
	owners, err := portOwners([]int{67, 5060}, tcp)
	if err != nil {
		d.add("ports", Warning, "could not read the socket table: "+err.Error(), "run doctor on Linux with /proc mounted")
		return
	}
	d.rep.Ports = owners
	for _, p := range owners {
		switch {
		case p.Free:
			d.add("ports", Info, p.String(), "")
		case p.Self:
			d.add("ports", Info, p.String()+" (this appliance)", "")
		default:
			d.add("ports", portLevel(p), p.String(), portFix(p))
		}
	}
}

func portLevel(p PortOwner) Level {
	if p.Proto == "udp" && p.Port == 5060 {
		return Problem // PnP must have it
	}
	return Warning // only matters if snomprov is to serve DHCP / HTTP on it
}

func portFix(p PortOwner) string {
	who := p.Process
	if who == "" {
		who = "that process"
	}
	switch {
	case p.Proto == "udp" && p.Port == 67:
		return fmt.Sprintf("snomprov's DHCP cannot run beside %s: stop it (systemctl disable --now %s) or keep [dhcp] enabled = false", who, who)
	case p.Proto == "udp" && p.Port == 5060:
		return fmt.Sprintf("PnP needs 5060/udp: stop %s, or move that SIP service to another port", who)
	default:
		return fmt.Sprintf("stop %s or set [http] listen to a free port", who)
	}
}

func (d *doctor) judgeDHCP(err error) {
	if err != nil {
		if len(d.rep.DHCPServers) == 0 {
			d.dhcpUnknown = true
			d.add("dhcp", Problem, "DHCP not checked: "+err.Error(), "run doctor as root (it needs a raw socket to send a DISCOVER without an address)")
			return
		}
		d.add("dhcp", Warning, "DHCP check incomplete: "+err.Error(), "")
	}
	var snomServers, foreign []DHCPServer
	for _, s := range d.rep.DHCPServers {
		what := "answers phones and PCs"
		switch {
		case s.AnswersSnom && !s.AnswersPC:
			what = "answers phones only"
		case !s.AnswersSnom:
			what = "answers PCs but ignores Snom phones"
		}
		desc := fmt.Sprintf("DHCP server %s %s", s.Name(), what)
		if s.AnswersSnom {
			desc += fmt.Sprintf("; offers %s to a phone, %s", s.Offered, describeURL(s.Snom))
			snomServers = append(snomServers, s)
		}
		if s.Self {
			desc += " (this appliance)"
		} else {
			foreign = append(foreign, s)
		}
		d.add("dhcp", Info, desc, "")
		if s.AnswersSnom && !s.Self && s.Snom.URL != "" && !d.pointsAtSelf(s.Snom.URL) {
			d.add("dhcp", Warning, fmt.Sprintf("DHCP server %s sends phones to %s, not to this appliance; phones with PnP off (or whose PnP fails) go there", s.Name(), s.Snom.URL),
				"remove option 66/67/43 for phones on that server, or point it here (`snomprov router-config` prints the settings)")
		}
	}
	if len(d.rep.DHCPServers) == 0 {
		d.add("dhcp", Info, "no DHCP server answered a DISCOVER", "")
	}
	if len(snomServers) > 1 {
		d.add("dhcp", Problem, fmt.Sprintf("%d DHCP servers answer phones (%s): a phone takes whichever OFFER comes first", len(snomServers), names(snomServers)),
			"keep one: disable the others, or set them to ignore the Snom vendor class (option 60 \"snom*\") and MACs 00:04:13/00:08:7B")
	}
	selfPort := false
	for _, p := range d.rep.Ports {
		if p.Proto == "udp" && p.Port == 67 && p.Self {
			selfPort = true
		}
	}
	if selfPort && len(foreign) > 0 {
		for _, s := range foreign {
			if s.AnswersSnom && d.o.LANNotServed {
				d.add("dhcp", Info, fmt.Sprintf("%s serves this LAN; snomprov serves only its [[dhcp.subnets]] here ([dhcp] has no pool)", s.Name()), "")
				break
			}
			if s.AnswersSnom {
				d.add("dhcp", Problem, fmt.Sprintf("snomprov serves DHCP here and %s answers phones too", s.Name()),
					"set [dhcp] enabled = false and use PnP or router-config, or stop the other server")
				break
			}
		}
	}
}

func names(ss []DHCPServer) string {
	n := make([]string, len(ss))
	for i, s := range ss {
		n[i] = s.Name()
	}
	return strings.Join(n, ", ")
}

func describeURL(u simulate.DHCPURL) string {
	var parts []string
	for _, kv := range [][2]string{{"66", u.Opt66}, {"67", u.Opt67}, {"43/66", u.Sub66}, {"43/67", u.Sub67}} {
		if kv[1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", kv[0], kv[1]))
		}
	}
	if len(parts) == 0 {
		return "no provisioning option (66/67/43)"
	}
	s := "options " + strings.Join(parts, " ")
	if u.URL != "" {
		s += " → " + u.URL
	}
	return s
}

func (d *doctor) judgePnP(err error, haveSource bool) {
	switch {
	case !haveSource:
		d.add("pnp", Warning, "PnP not checked: the interface has no IPv4 address to send from", "")
		return
	case err != nil:
		d.add("pnp", Problem, "PnP check failed: "+err.Error(), "check the interface's multicast route: ip route add 224.0.0.0/4 dev "+d.o.Interface)
		return
	}
	selfAnswered := false
	for _, r := range d.rep.Responders {
		who := r.Responder.String()
		if r.Self {
			who += " (this appliance)"
			selfAnswered = selfAnswered || r.URL != ""
		}
		switch {
		case r.URL != "":
			detail := fmt.Sprintf("PnP responder %s answers %d and gives %s", who, r.Status, r.URL)
			if len(r.Warnings) > 0 {
				detail += "; note: " + strings.Join(r.Warnings, "; ")
			}
			d.add("pnp", Info, detail, "")
			if !r.Self && !d.pointsAtSelf(r.URL) {
				d.add("pnp", Problem, fmt.Sprintf("another PnP responder (%s) sends phones to %s; the first NOTIFY wins, so phones may never reach this appliance", r.Responder, r.URL),
					"turn PnP off on that device (a PBX's \"SIP plug and play\"/\"phone provisioning\" option), or use it instead of snomprov")
			}
		case r.Status >= 300:
			d.add("pnp", Info, fmt.Sprintf("PnP responder %s refuses this sample phone with %d %s", who, r.Status, r.Reason), "")
		default:
			d.add("pnp", Warning, fmt.Sprintf("PnP responder %s answered %d but sent no NOTIFY with a URL", who, r.Status), "check that responder's configuration")
		}
	}
	if len(d.rep.Responders) == 0 {
		d.add("pnp", Info, "no PnP responder answered the multicast SUBSCRIBE", "")
	}
	if d.o.SelfURL != "" && !selfAnswered {
		d.add("pnp", Warning, "this appliance did not answer the PnP probe",
			"if snomprov runs here, check [pnp] enabled and answer (\"none\" only records; \"configured\" answers only phones in [[phones]])")
	}
}

// checkURLs fetches <type>.htm from every announced setting URL.
func (d *doctor) checkURLs(ctx context.Context) {
	sources := map[string][]string{}
	var order []string
	note := func(u, src string) {
		if u == "" {
			return
		}
		if _, seen := sources[u]; !seen {
			order = append(order, u)
		}
		sources[u] = append(sources[u], src)
	}
	for _, s := range d.rep.DHCPServers {
		if s.AnswersSnom {
			note(s.Snom.URL, "dhcp "+s.Name())
		}
	}
	for _, r := range d.rep.Responders {
		note(r.URL, "pnp "+r.Responder.String())
	}
	note(d.o.SelfURL, "self")
	id := simulate.Identity{MAC: simulate.RandomSnomMAC(), Model: d.o.Model, Firmware: simulate.DefaultFirmware}
	src := firstIPv4(d.rep.Addresses)
	f := simulate.NewFetcher(id, src, d.o.Timeout)
	defer f.Client.CloseIdleConnections()
	for _, u := range order {
		c := URLCheck{SettingURL: u, Sources: sources[u]}
		urls, err := simulate.SettingFileURLs(u, id)
		if err != nil {
			c.Detail = err.Error()
			d.rep.URLs = append(d.rep.URLs, c)
			d.add("http", Problem, fmt.Sprintf("%s (from %s): %s", u, strings.Join(c.Sources, ", "), err), "hand out an absolute http:// URL")
			continue
		}
		c.Fetched = urls[0]
		ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
		body, n, err := f.Get(ctx, c.Fetched, 4<<20)
		cancel()
		var he *simulate.HTTPError
		switch {
		case errors.As(err, &he):
			c.Status = he.Status
			c.Detail = fmt.Sprintf("HTTP %s for a sample %s", he.Text, d.o.Model)
			d.add("http", Warning, fmt.Sprintf("%s answers %s for %s", u, he.Text, c.Fetched),
				"fine if every phone is listed in [[phones]]; otherwise set [http] unknown_phones = \"generic\"")
		case err != nil:
			c.Detail = err.Error()
			d.add("http", Problem, fmt.Sprintf("%s (from %s) is not reachable: %v", u, strings.Join(c.Sources, ", "), err), "start the server behind that URL, or correct the URL where it is announced")
		default:
			c.Status = 200
			parsed, perr := simulate.ParseSettings(body)
			if perr != nil {
				c.Detail = fmt.Sprintf("HTTP 200, %d bytes, but %v", n, perr)
				d.add("http", Problem, fmt.Sprintf("%s serves %s that a phone cannot use: %v", u, c.Fetched, perr), "serve Snom XML settings there")
			} else {
				c.OK = true
				c.Detail = fmt.Sprintf("HTTP 200, %d bytes, %s", n, parsed.Summary())
				d.add("http", Info, fmt.Sprintf("%s serves valid XML: %s", c.Fetched, c.Detail), "")
			}
		}
		d.rep.URLs = append(d.rep.URLs, c)
	}
}

// recommend picks the mode (see the package comment).
func (d *doctor) recommend() {
	var snomAnswering, pcOnly, selfDHCP bool
	var routerDone string
	for _, s := range d.rep.DHCPServers {
		if s.Self {
			selfDHCP = true
			continue
		}
		if s.AnswersSnom {
			snomAnswering = true
			if s.Snom.URL != "" && d.pointsAtSelf(s.Snom.URL) {
				routerDone = s.Name()
			}
		} else if s.AnswersPC {
			pcOnly = true
		}
	}
	for _, p := range d.rep.Ports {
		if p.Proto == "udp" && p.Port == 67 && p.Self {
			selfDHCP = true
		}
	}
	rivalPnP := false
	for _, r := range d.rep.Responders {
		if !r.Self && r.URL != "" && !d.pointsAtSelf(r.URL) {
			rivalPnP = true
		}
	}
	pnpUsable := d.rep.Multicast && len(d.rep.Addresses) > 0 && !rivalPnP
	switch {
	case d.dhcpUnknown:
		d.rep.Mode = ""
		d.rep.Recommendation = "none yet: the DHCP check did not run, so it is unknown whether another DHCP server serves this LAN. Fix that and run doctor again."
	case routerDone != "":
		d.rep.Mode = ModeRouter
		d.rep.Recommendation = fmt.Sprintf("Your DHCP server %s already points phones at this appliance; nothing to change.", routerDone)
	case snomAnswering && pnpUsable:
		d.rep.Mode = ModePnPOnly
		d.rep.Recommendation = "Keep your DHCP server and let snomprov answer PnP ([pnp] enabled = true, answer = \"snom\"). Phones with PnP switched off need option 66 from your router: see `snomprov router-config`."
	case snomAnswering:
		d.rep.Mode = ModeRouter
		d.rep.Recommendation = "Set option 66 on your DHCP server to this appliance's URL: `snomprov router-config` prints the exact settings. If you cannot change it, phones-only DHCP ([dhcp] enabled = true, serve = \"phones\") works only if your server can be told to ignore Snom phones."
	case pcOnly:
		d.rep.Mode = ModePhonesOnlyDHCP
		d.rep.Recommendation = "Your DHCP server ignores Snom phones: let snomprov serve them ([dhcp] enabled = true, serve = \"phones\") with a pool outside your server's range."
	default:
		d.rep.Mode = ModeSnomprovDHCP
		d.rep.Recommendation = "No other DHCP server answered: let snomprov hand out addresses ([dhcp] enabled = true, serve = \"all\")."
		if selfDHCP {
			d.rep.Recommendation = "snomprov is the only DHCP server here; keep [dhcp] enabled."
		}
	}
}

func (d *doctor) print(w io.Writer) {
	for _, f := range d.rep.Findings {
		fmt.Fprintf(w, "  %-9s %-7s %s\n", f.Check, f.Level, f.Detail)
		if f.Fix != "" && f.Level != Info {
			fmt.Fprintf(w, "  %-9s %-7s fix: %s\n", "", "", f.Fix)
		}
	}
	if n := d.rep.Problems(); n > 0 {
		fmt.Fprintf(w, "Verdict: %d problem(s) to fix (see above).\n", n)
	} else {
		fmt.Fprintln(w, "Verdict: no problems found.")
	}
	if d.rep.Mode == "" {
		fmt.Fprintf(w, "Recommended mode: %s\n", d.rep.Recommendation)
		return
	}
	fmt.Fprintf(w, "Recommended mode: %s. %s\n", d.rep.Mode, d.rep.Recommendation)
}
