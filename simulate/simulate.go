// Package simulate behaves like one or more Snom phones booting on a LAN
// interface and reports, step by step, whether each would be provisioned.
//
// What it sends on the wire, per simulated phone, in this order:
//
//  1. DHCP (unless NoDHCP), through an AF_PACKET socket on Options.Interface
//     (needs root or CAP_NET_RAW): a broadcast DISCOVER and then a REQUEST
//     with chaddr = the simulated Snom MAC, option 60 = the model (e.g.
//     snomD785), the broadcast flag set, and a parameter request list that
//     includes 43, 66 and 67. The lease is taken (and kept: it shows up in
//     the DHCP server's lease list) but never configured on the interface.
//     The setting URL is read from 66/67; sub-options 66/67 of option 43
//     win over them, as on a real phone.
//  2. SIP PnP (unless NoPnP): the Snom SUBSCRIBE (Event ua-profile with
//     vendor/model/version, User-Agent <model>/<firmware>, no Via branch,
//     like a D-series phone) to 224.0.1.75:5060, out of Options.Interface
//     only (IP_MULTICAST_IF) with TTL 1, retransmitted on RFC 3261 timer E
//     until a responder answers. Every NOTIFY is answered with 200 OK
//     (to its Via, or its source when the Via has rport).
//  3. HTTP GETs with the Snom desk-phone User-Agent, following the seed's
//     rules: <type>.htm and <type>-<MAC>.htm for a base URL (or the file
//     and its -<MAC> variant, or exactly the {mac} URL), every file listed
//     in a <setting-files> container, then the firmware file (the
//     firmware_status URL, else <dir>/<type>/<type>-firmware.htm and then
//     <dir>/<type>-firmware.htm) and the firmware image it names, which is
//     downloaded and counted but not kept.
//
// Which setting URL wins follows the phone's default provisioning_order
// (redirection, pnp, dhcp, tr69): the PnP URL when a responder sent one,
// else the DHCP one.
//
// On the appliance itself: a DHCP server on the same host never sees the
// DHCP step's frames (AF_PACKET output is not looped back into the host's
// own IP stack), so run simulate from another machine of the LAN, or use
// NoDHCP there. PnP and HTTP work on the same host (multicast loopback).
//
// Source address: simulate never changes the interface's addresses. The
// leased IP is only reported; SIP and HTTP leave from the interface's own
// IPv4 address (its first one). An interface without an IPv4 address can
// run the DHCP step only, and the later steps fail saying so.
package simulate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/snomprov/snomprov/internal/fieldtool"
	"github.com/snomprov/snomprov/phone"
)

// Defaults.
const (
	DefaultModel    = "snomD785"
	DefaultFirmware = "10.1.33.33"
	DefaultTimeout  = 5 * time.Second
	MaxCount        = 1000
)

// Options configure Run.
type Options struct {
	Interface string
	Model     string        // default snomD785
	MAC       phone.MAC     // default: a random 00:04:13 MAC
	Count     int           // phones to simulate concurrently; MACs count up from MAC
	Firmware  string        // version the phone claims; default 10.1.33.33
	Timeout   time.Duration // per step (DHCP exchange, PnP wait, one HTTP request); default 5 s

	NoDHCP     bool // skip DHCP (a LAN where another server's lease is irrelevant)
	NoPnP      bool // skip the multicast SUBSCRIBE
	NoFirmware bool // stop after the settings files

	// CAFile is the CA the phone trusts for HTTPS (the appliance's
	// state_dir/tls/ca.crt); empty: the system's roots.
	CAFile string
	// ClientCert and ClientKey are the device certificate the phone
	// presents over HTTPS (PEM files); empty: none.
	ClientCert, ClientKey string
}

// Status of one step.
type Status string

// Step statuses. A warning is something a real phone survives.
const (
	OK      Status = "ok"
	Warn    Status = "warn"
	Failed  Status = "FAILED"
	Skipped Status = "skipped"
)

// Step is one line of the report.
type Step struct {
	Name     string        `json:"name"`             // dhcp, address, pnp, url, settings, firmware-file, firmware-image
	Target   string        `json:"target,omitempty"` // URL or address the step talked to
	Status   Status        `json:"status"`
	Detail   string        `json:"detail"` // result, or what went wrong and what to do
	Duration time.Duration `json:"duration"`
}

// PhoneReport is the outcome for one simulated phone.
type PhoneReport struct {
	Phone      Identity   `json:"phone"`
	LeasedIP   netip.Addr `json:"leased_ip,omitzero"`
	DHCPServer netip.Addr `json:"dhcp_server,omitzero"`
	SourceIP   netip.Addr `json:"source_ip,omitzero"`
	DHCPURL    string     `json:"dhcp_url,omitempty"`
	PnPURL     string     `json:"pnp_url,omitempty"`
	SettingURL string     `json:"setting_url,omitempty"`
	URLSource  string     `json:"url_source,omitempty"` // pnp | dhcp
	Firmware   string     `json:"firmware_image,omitempty"`
	ImageBytes int64      `json:"image_bytes,omitempty"`
	Steps      []Step     `json:"steps"`
}

// OK is true when no step failed.
func (p PhoneReport) OK() bool {
	for _, s := range p.Steps {
		if s.Status == Failed {
			return false
		}
	}
	return true
}

// FirstFailure returns the first failed step.
func (p PhoneReport) FirstFailure() (Step, bool) {
	for _, s := range p.Steps {
		if s.Status == Failed {
			return s, true
		}
	}
	return Step{}, false
}

// Report is the outcome of Run.
type Report struct {
	Interface string        `json:"interface"`
	Phones    []PhoneReport `json:"phones"`
}

// Failed counts the phones with a failed step.
func (r Report) Failed() int { return fieldtool.Failed(r.Phones) }

// ErrFailed is wrapped by Run's error when a phone would not be provisioned.
var ErrFailed = errors.New("simulation failed")

// Run simulates Options.Count phones concurrently, printing each step to w
// as it finishes. The error wraps ErrFailed when any phone had a failed
// step; other errors mean the simulation could not start.
func Run(ctx context.Context, o Options, w io.Writer) (Report, error) {
	rep := Report{Interface: o.Interface}
	if err := o.fill(); err != nil {
		return rep, err
	}
	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return rep, fmt.Errorf("interface %q: %w; list interfaces with `ip link`", o.Interface, err)
	}
	src := firstIPv4(ifi)

	out := &printer{w: w, prefix: o.Count > 1}
	fmt.Fprintf(w, "Simulating %d %s phone(s) with firmware %s on %s, first MAC %s\n", o.Count, o.Model, o.Firmware, o.Interface, o.MAC)
	// One DHCP socket for all phones; if it cannot be opened, every
	// phone's DHCP step reports why.
	var mux *dhcpMux
	var muxErr error
	if !o.NoDHCP {
		if mux, muxErr = newDHCPMux(o.Interface); mux != nil {
			defer mux.Close()
		}
	}
	rep.Phones = fieldtool.Each(o.Count, func(i int) PhoneReport {
		id := Identity{MAC: addToMAC(o.MAC, i), Model: o.Model, Firmware: o.Firmware}
		return runPhone(ctx, o, id, ifi, src, mux, muxErr, out)
	})
	for _, p := range rep.Phones {
		if s, bad := p.FirstFailure(); bad {
			fmt.Fprintf(w, "%s: would NOT be provisioned: failed at %s: %s\n", p.Phone.MAC, s.Name, s.Detail)
		} else {
			fmt.Fprintf(w, "%s: would be provisioned from %s (%s)\n", p.Phone.MAC, p.SettingURL, p.URLSource)
		}
	}
	return rep, fieldtool.Err(ErrFailed, rep.Phones, "simulated phone(s) would not be provisioned")
}

func (o *Options) fill() error {
	if o.Interface == "" {
		return errors.New("no interface given; name the phones' LAN interface, e.g. eth0")
	}
	if o.Model == "" {
		o.Model = DefaultModel
	}
	if !phone.ValidModel(o.Model) {
		return fmt.Errorf("model %q is not a Snom phone type; use the vendor class form, e.g. snomD785", o.Model)
	}
	if o.Firmware == "" {
		o.Firmware = DefaultFirmware
	}
	if o.Count <= 0 {
		o.Count = 1
	}
	if o.Count > MaxCount {
		return fmt.Errorf("%d phones is more than the %d allowed; a DHCP pool rarely has room for that many", o.Count, MaxCount)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MAC.IsZero() {
		o.MAC = RandomSnomMAC()
	}
	return nil
}

// RandomSnomMAC returns 00:04:13 followed by three random bytes.
func RandomSnomMAC() phone.MAC {
	m := phone.MAC{0x00, 0x04, 0x13}
	_, _ = rand.Read(m[3:])
	return m
}

// addToMAC counts up in the lower three bytes, keeping the OUI.
func addToMAC(m phone.MAC, n int) phone.MAC {
	v := (int(m[3])<<16 | int(m[4])<<8 | int(m[5])) + n
	m[3], m[4], m[5] = byte(v>>16), byte(v>>8), byte(v)
	return m
}

func firstIPv4(ifi *net.Interface) netip.Addr {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() {
			return pfx.Addr()
		}
	}
	return netip.Addr{}
}

// printer serialises step lines from concurrent phones.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix bool
}

func (p *printer) step(id Identity, s Step) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pre := "  "
	if p.prefix {
		pre = "  " + id.MAC.String() + " "
	}
	dur := ""
	if s.Duration > 0 {
		dur = s.Duration.Round(time.Millisecond).String()
	}
	line := fmt.Sprintf("%s%-15s %-7s %7s  %s", pre, s.Name, s.Status, dur, s.Detail)
	if s.Target != "" {
		line += "  [" + s.Target + "]"
	}
	fmt.Fprintln(p.w, line)
}

// phoneRun carries one phone's state through its steps.
type phoneRun struct {
	ctx context.Context
	o   Options
	out *printer
	rep PhoneReport
	// followed: the settings were fetched again from the HTTPS
	// setting_server the bootstrap gave (once).
	followed bool
}

func (r *phoneRun) add(s Step) {
	r.rep.Steps = append(r.rep.Steps, s)
	r.out.step(r.rep.Phone, s)
}

func runPhone(ctx context.Context, o Options, id Identity, ifi *net.Interface, src netip.Addr, mux *dhcpMux, muxErr error, out *printer) PhoneReport {
	r := &phoneRun{ctx: ctx, o: o, out: out, rep: PhoneReport{Phone: id}}
	var dhcpURL DHCPURL

	// 1. DHCP
	if o.NoDHCP {
		r.add(Step{Name: "dhcp", Status: Skipped, Detail: "DHCP skipped (--no-dhcp)"})
	} else {
		start := time.Now()
		res, err := dhcpResult{}, muxErr
		if err == nil {
			res, err = runDHCP(ctx, mux, o.Interface, id.MAC, id.Model, o.Timeout)
		}
		s := Step{Name: "dhcp", Duration: time.Since(start)}
		if err != nil {
			s.Status, s.Detail = Failed, err.Error()
			r.add(s)
			return r.rep
		}
		r.rep.LeasedIP, r.rep.DHCPServer, dhcpURL = res.Leased, res.ServerID, res.URL
		r.rep.DHCPURL = res.URL.URL
		s.Status, s.Target = OK, res.ServerID.String()
		s.Detail = fmt.Sprintf("leased %s from %s; %s", res.Leased, res.ServerID, describeDHCPURL(res.URL))
		r.add(s)
	}

	// 2. The address the later steps send from.
	if !src.IsValid() {
		r.add(Step{Name: "address", Status: Failed, Detail: fmt.Sprintf("%s has no IPv4 address, so the simulated phone cannot send SIP or HTTP (simulate never changes interface addresses); give %s an address on the phones' LAN", o.Interface, o.Interface)})
		return r.rep
	}
	r.rep.SourceIP = src
	detail := fmt.Sprintf("sending from %s, the address of %s", src, o.Interface)
	if r.rep.LeasedIP.IsValid() && r.rep.LeasedIP != src {
		detail += fmt.Sprintf(" (the leased %s is only reported)", r.rep.LeasedIP)
	}
	r.add(Step{Name: "address", Status: OK, Detail: detail})

	// 3. PnP
	pnpURL := r.pnp(ifi, src, id, dhcpURL.URL != "")

	// 4. Which URL the phone uses.
	switch {
	case pnpURL != "":
		r.rep.SettingURL, r.rep.URLSource = pnpURL, "pnp"
		d := "PnP URL used (provisioning_order: pnp before dhcp)"
		if dhcpURL.URL != "" && dhcpURL.URL != pnpURL {
			d += fmt.Sprintf("; the DHCP URL %s is ignored", dhcpURL.URL)
		}
		r.add(Step{Name: "url", Status: OK, Target: pnpURL, Detail: d})
	case dhcpURL.URL != "":
		r.rep.SettingURL, r.rep.URLSource = dhcpURL.URL, "dhcp"
		r.add(Step{Name: "url", Status: OK, Target: dhcpURL.URL, Detail: "DHCP URL used (no PnP URL)"})
	default:
		r.add(Step{Name: "url", Status: Failed, Detail: "neither PnP nor DHCP gave a setting URL; the phone would fall back to the Snom cloud. Set [pnp] answer so snomprov answers this phone, or hand out option 66 (snomprov DHCP or `snomprov router-config`)"})
		return r.rep
	}

	// 5. Settings files.
	fetch := NewFetcher(id, src, o.Timeout)
	defer fetch.Client.CloseIdleConnections()
	if err := fetch.TrustAndPresent(o.CAFile, o.ClientCert, o.ClientKey); err != nil {
		r.add(Step{Name: "settings", Status: Failed, Detail: err.Error()})
		return r.rep
	}
	files := r.settings(fetch, id)
	if files == nil {
		return r.rep
	}
	if o.NoFirmware {
		r.add(Step{Name: "firmware-file", Status: Skipped, Detail: "firmware skipped (--no-firmware)"})
		return r.rep
	}

	// 6. Firmware file and image.
	r.firmware(fetch, id, files)
	return r.rep
}

func describeDHCPURL(u DHCPURL) string {
	var parts []string
	if u.Opt66 != "" {
		parts = append(parts, fmt.Sprintf("66=%q", u.Opt66))
	}
	if u.Opt67 != "" {
		parts = append(parts, fmt.Sprintf("67=%q", u.Opt67))
	}
	if u.Sub66 != "" {
		parts = append(parts, fmt.Sprintf("43/66=%q", u.Sub66))
	}
	if u.Sub67 != "" {
		parts = append(parts, fmt.Sprintf("43/67=%q", u.Sub67))
	}
	if u.Opt43Unparseable {
		parts = append(parts, "option 43 is not in code/len/value form")
	}
	if len(parts) == 0 {
		return "no option 66/67/43: DHCP gives no setting URL"
	}
	s := strings.Join(parts, " ")
	if u.URL != "" {
		s += " → " + u.URL
	}
	if u.Note != "" {
		s += " (" + u.Note + ")"
	}
	return s
}

// pnp runs the multicast step and returns the URL a phone would take.
func (r *phoneRun) pnp(ifi *net.Interface, src netip.Addr, id Identity, haveDHCPURL bool) string {
	if r.o.NoPnP {
		r.add(Step{Name: "pnp", Status: Skipped, Detail: "PnP skipped (--no-pnp)"})
		return ""
	}
	// Without a PnP answer the phone goes on to DHCP: only then is it fatal.
	miss := Failed
	if haveDHCPURL {
		miss = Warn
	}
	start := time.Now()
	answers, err := ProbePnP(r.ctx, PnPProbe{Interface: ifi, Source: src, Phone: id, Wait: r.o.Timeout, UntilFirstURL: true})
	s := Step{Name: "pnp", Duration: time.Since(start), Target: PnPGroup.String()}
	if err != nil {
		s.Status, s.Detail = miss, err.Error()
		r.add(s)
		return ""
	}
	for _, a := range answers {
		if a.URL != "" {
			r.rep.PnPURL = a.URL
			s.Status, s.Target, s.Duration = OK, a.NotifyFrom.String(), a.Elapsed
			s.Detail = fmt.Sprintf("%s answered %d, NOTIFY gives %s", a.Responder, a.Status, a.URL)
			if a.Status == 0 {
				s.Detail = fmt.Sprintf("%s sent a NOTIFY (no 200 to the SUBSCRIBE seen) with %s", a.Responder, a.URL)
			}
			if len(a.Warnings) > 0 {
				s.Detail += "; note: " + strings.Join(a.Warnings, "; ")
			}
			r.add(s)
			return a.URL
		}
	}
	s.Status = miss
	switch {
	case len(answers) == 0:
		s.Detail = fmt.Sprintf("no PnP responder answered within %s; is snomprov's [pnp] enabled on this LAN, and does the switch pass multicast?", r.o.Timeout)
	default:
		var why []string
		for _, a := range answers {
			switch {
			case a.Status >= 300:
				why = append(why, fmt.Sprintf("%s refused with %d %s (not allowed by its answer policy: check [pnp] answer and [[phones]])", a.Responder, a.Status, a.Reason))
			case a.NotifyFrom.IsValid():
				why = append(why, fmt.Sprintf("%s sent a NOTIFY without a usable URL: %s", a.Responder, strings.Join(a.Warnings, "; ")))
			default:
				why = append(why, fmt.Sprintf("%s answered %d but sent no NOTIFY within %s", a.Responder, a.Status, r.o.Timeout))
			}
		}
		s.Detail = strings.Join(why, "; ")
	}
	if miss == Warn {
		s.Detail += "; the phone falls back to the DHCP URL"
	}
	r.add(s)
	return ""
}

// settings fetches the setting files and every file they list. It returns
// the parsed files, or nil when none could be fetched (a failed step was added).
func (r *phoneRun) settings(f *Fetcher, id Identity) []SettingsFile {
	urls, err := SettingFileURLs(r.rep.SettingURL, id)
	if err != nil {
		r.add(Step{Name: "settings", Status: Failed, Target: r.rep.SettingURL, Detail: err.Error() + "; fix the URL in [http] url"})
		return nil
	}
	type item struct {
		url    string
		listed bool // named in a <setting-files> container
		depth  int
	}
	queue := make([]item, 0, len(urls))
	for _, u := range urls {
		queue = append(queue, item{url: u})
	}
	const maxFiles = 32
	var got []SettingsFile
	var misses []string
	unauthorized := false // some answer was 401
	seen := map[string]bool{}
	for len(queue) > 0 && len(seen) < maxFiles {
		it := queue[0]
		queue = queue[1:]
		if seen[it.url] {
			continue
		}
		seen[it.url] = true
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.ctx, r.o.Timeout)
		body, n, err := f.Get(ctx, it.url, maxBody)
		cancel()
		s := Step{Name: "settings", Target: it.url, Duration: time.Since(start)}
		if err != nil {
			var he *HTTPError
			unauthorized = unauthorized || (errors.As(err, &he) && he.Status == http.StatusUnauthorized)
			s.Status, s.Detail = Warn, err.Error()
			if it.listed {
				s.Status = Failed
				s.Detail += "; the file is listed in <setting-files> but not served"
			} else {
				s.Detail += "; the phone skips this file"
				misses = append(misses, fmt.Sprintf("%s → %s", it.url, err))
			}
			r.add(s)
			continue
		}
		parsed, err := ParseSettings(body)
		if err != nil {
			s.Status, s.Detail = Failed, fmt.Sprintf("HTTP 200, %d bytes, but %v; the phone cannot use it", n, err)
			r.add(s)
			continue
		}
		s.Status, s.Detail = OK, fmt.Sprintf("HTTP 200, %d bytes, %s", n, parsed.Summary())
		r.add(s)
		got = append(got, parsed)
		if it.depth < 3 {
			for _, u := range parsed.Files {
				queue = append(queue, item{url: id.Expand(u), listed: true, depth: it.depth + 1})
			}
		}
	}
	if len(got) == 0 {
		why := "the server does not know this phone: add it to [[phones]], or set [http] unknown_phones = \"generic\""
		if unauthorized {
			why = "the server asks for HTTP credentials (Basic auth) and the URL carries none that it accepts: " +
				"hand phones the URL with user:password@ (snomprov's own URL does this when [http] username is set), or check [http] username and password"
		}
		r.add(Step{Name: "settings", Status: Failed, Target: r.rep.SettingURL, Detail: fmt.Sprintf("no setting file was served (%s); %s", strings.Join(misses, "; "), why)})
		return nil
	}
	if next := bootstrapTarget(r.rep.SettingURL, got); next != "" && !r.followed {
		// The phone applies setting_server and provisions again from
		// there: the plain-HTTP bootstrap moving it to HTTPS.
		r.followed = true
		r.add(Step{Name: "bootstrap", Status: OK, Target: next, Detail: "setting_server moves the phone from " + r.rep.SettingURL + " to HTTPS; fetching the settings again there"})
		r.rep.SettingURL = next
		return r.settings(f, id)
	}
	return got
}

// bootstrapTarget is the https:// setting_server a file fetched over
// plain HTTP moves the phone to, or "".
func bootstrapTarget(current string, files []SettingsFile) string {
	if strings.HasPrefix(current, "https://") {
		return ""
	}
	for _, f := range files {
		if u := f.Settings["setting_server"]; strings.HasPrefix(u, "https://") {
			return u
		}
	}
	return ""
}

// firmware follows the firmware pointer of the settings and downloads the image.
func (r *phoneRun) firmware(f *Fetcher, id Identity, files []SettingsFile) {
	var status, direct string
	for _, sf := range files { // later files override earlier ones, as on the phone
		if sf.FirmwareStatus != "" {
			status = sf.FirmwareStatus
		}
		if sf.Root != "firmware-settings" && sf.Firmware != "" {
			direct = sf.Firmware
		}
	}
	image := ""
	switch {
	case direct != "":
		image = id.Expand(direct)
		r.add(Step{Name: "firmware-file", Status: OK, Detail: "the settings name the image directly (setting firmware)", Target: image})
	default:
		var candidates []string
		if status != "" {
			candidates = []string{id.Expand(status)}
		} else {
			candidates, _ = FirmwareFallbackURLs(r.rep.SettingURL, id)
		}
		for i, u := range candidates {
			last := i == len(candidates)-1
			start := time.Now()
			ctx, cancel := context.WithTimeout(r.ctx, r.o.Timeout)
			body, n, err := f.Get(ctx, u, maxBody)
			cancel()
			s := Step{Name: "firmware-file", Target: u, Duration: time.Since(start)}
			if err != nil {
				s.Status, s.Detail = Warn, err.Error()+"; the phone tries the next URL"
				var he *HTTPError
				if last && status == "" && errors.As(err, &he) && he.Status == http.StatusNotFound {
					// No firmware is configured for the type: the phone
					// keeps what it runs and is provisioned all the same.
					s.Status, s.Detail = Skipped, fmt.Sprintf("%s; no firmware is configured for %s, so the phone keeps the firmware it runs (set [models.%s] firmware to push one)", err, id.Model, id.Model)
				} else if last {
					s.Status = Failed
					s.Detail = err.Error() + fmt.Sprintf("; no firmware file for %s, so the phone keeps its firmware. Set [models.%s] firmware to an image in firmware_dir, or use --no-firmware if you do not push firmware", id.Model, id.Model)
					if status != "" {
						s.Detail = err.Error() + "; the settings' firmware_status points at a file the server does not serve"
					}
				}
				r.add(s)
				continue
			}
			parsed, err := ParseSettings(body)
			if err == nil && parsed.Firmware == "" && parsed.Keep != "" {
				// Not a failure: the server holds this phone's image back
				// (a rollout waiting for or held by a canary, the loop guard).
				s.Status, s.Detail = Warn, fmt.Sprintf("HTTP 200, %d bytes, no image: the server holds it back (%s)", n, parsed.Keep)
				r.add(s)
				return
			}
			if err == nil && parsed.Firmware == "" {
				err = errors.New("it has no <firmware> element naming an image")
			}
			if err != nil {
				s.Status, s.Detail = Failed, fmt.Sprintf("HTTP 200, %d bytes, but %v", n, err)
				r.add(s)
				return
			}
			s.Status, s.Detail = OK, fmt.Sprintf("HTTP 200, %d bytes, %s", n, parsed.Summary())
			r.add(s)
			image = id.Expand(parsed.Firmware)
			break
		}
	}
	if image == "" {
		return
	}
	r.rep.Firmware = image
	start := time.Now()
	// An image is megabytes: give it ten steps' time.
	ctx, cancel := context.WithTimeout(r.ctx, 10*r.o.Timeout)
	_, n, err := f.Get(ctx, image, -1)
	cancel()
	el := time.Since(start)
	s := Step{Name: "firmware-image", Target: image, Duration: el}
	if err != nil {
		s.Status, s.Detail = Failed, err.Error()+"; check that the image named in the firmware file exists in firmware_dir"
		r.add(s)
		return
	}
	r.rep.ImageBytes = n
	if n == 0 {
		s.Status, s.Detail = Failed, "HTTP 200 but the image is empty; replace the file in firmware_dir"
		r.add(s)
		return
	}
	s.Status, s.Detail = OK, fmt.Sprintf("HTTP 200, %d bytes (%.1f MB/s)", n, float64(n)/1e6/max(el.Seconds(), 1e-6))
	r.add(s)
}
