// Package resync asks Snom phones to re-read their provisioning files
// without anyone touching them.
//
// On the wire it sends, for each target, one out-of-dialog SIP request by
// UDP from an ephemeral port of this host to the phone's ip:port (default
// 5060):
//
//	NOTIFY sip:<phone-ip>:<port> SIP/2.0
//	Via: SIP/2.0/UDP <our-ip>:<our-port>;branch=z9hG4bK<random>;rport
//	Max-Forwards: 70
//	From: <sip:snomprov@<our-ip>>;tag=<random>
//	To: <sip:<phone-ip>:<port>>
//	Call-ID: <random>@<our-ip>
//	CSeq: 1 NOTIFY
//	Contact: <sip:snomprov@<our-ip>:<our-port>>
//	Event: check-sync;reboot=false        (reboot=true with Options.Reboot)
//	Subscription-State: terminated
//	User-Agent: snomprov
//	Content-Length: 0
//
// It retransmits the request on RFC 3261 timer E (500 ms, doubling, capped
// at 4 s) until the phone sends a final response or Options.Timeout (default
// 4 s) runs out, and reports who answered with what. Provisional (1xx)
// answers are noted but do not end the wait. At most Options.Concurrency
// phones (default 256) are waited on at once. Nothing is sent to any other
// address, and nothing is broadcast or multicast.
package resync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/internal/fieldtool"
	"github.com/snomprov/snomprov/phone"
)

// DefaultPort is the SIP port used when a target has none.
const DefaultPort = 5060

// DefaultTimeout is how long to wait for each phone's final response.
const DefaultTimeout = 4 * time.Second

// DefaultConcurrency is how many phones Run waits on at once: 5000 phones
// that all stay silent take 5000/256 × 4 s ≈ 80 s, and the NOTIFYs leave
// in bursts of at most this many.
const DefaultConcurrency = 256

// Timer E bounds from RFC 3261 §17.1.2.2 (T1 = 500 ms, T2 = 4 s).
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

// Target is one phone to poke.
type Target struct {
	MAC  phone.MAC      // for the report only; may be zero
	Addr netip.AddrPort // the phone's last known IP; port 0 means 5060
}

// Options configure Run.
type Options struct {
	Targets []Target
	Reboot  bool          // Event: check-sync;reboot=true instead of reboot=false
	Timeout time.Duration // per phone; default 4 s
	// Concurrency bounds the phones waited on at once; default
	// DefaultConcurrency.
	Concurrency int
	// Done, when set, is told each phone's result (i indexes Targets) as
	// soon as it is known, from several goroutines at once.
	Done func(i int, r Result) `json:"-"`
}

// Result is what one phone answered.
type Result struct {
	Target   Target        `json:"target"`
	Answered bool          `json:"answered"`
	Status   int           `json:"status,omitempty"` // final SIP status code, 0 if none
	Reason   string        `json:"reason,omitempty"` // SIP reason phrase
	From     string        `json:"from,omitempty"`   // ip:port the answer came from
	Sent     int           `json:"sent"`             // NOTIFYs sent, retransmissions included
	Elapsed  time.Duration `json:"elapsed"`
	Error    string        `json:"error,omitempty"` // what went wrong and what to do; empty when OK
}

// OK reports whether the phone accepted the request (2xx).
func (r Result) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Report is the outcome of one Run.
type Report struct {
	Reboot  bool     `json:"reboot"`
	Results []Result `json:"results"`
}

// Failed counts the phones that did not answer 2xx.
func (r Report) Failed() int { return fieldtool.Failed(r.Results) }

// ErrFailed is wrapped by Run's error when at least one phone did not accept.
var ErrFailed = errors.New("resync failed")

// Run sends a check-sync NOTIFY to every target concurrently, writes one
// line per phone to w and returns the report. The error is non-nil (and
// wraps ErrFailed) if any phone did not answer 2xx.
func Run(ctx context.Context, o Options, w io.Writer) (Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	rep := Report{Reboot: o.Reboot, Results: make([]Result, len(o.Targets))}
	if len(o.Targets) == 0 {
		return rep, fmt.Errorf("%w: no phones to resync; name phones by MAC, or use --all or --state", ErrFailed)
	}
	// One socket for all targets: answers are matched by Call-ID.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return rep, fmt.Errorf("open a UDP socket: %w", err)
	}
	defer conn.Close()
	localPort := conn.LocalAddr().(*net.UDPAddr).Port

	d := &dispatcher{waiting: map[string]chan answer{}}
	go d.readLoop(conn)

	rep.Results = fieldtool.EachLimit(len(o.Targets), o.Concurrency, func(i int) Result {
		t := o.Targets[i]
		if t.Addr.Port() == 0 {
			t.Addr = netip.AddrPortFrom(t.Addr.Addr(), DefaultPort)
		}
		r := poke(ctx, conn, localPort, d, t, o)
		if o.Done != nil {
			o.Done(i, r)
		}
		return r
	})

	event := "check-sync;reboot=false"
	if o.Reboot {
		event = "check-sync;reboot=true"
	}
	fmt.Fprintf(w, "Sent NOTIFY (Event: %s) to %d phone(s):\n", event, len(rep.Results))
	for _, r := range rep.Results {
		fmt.Fprintf(w, "  %s\n", r.line())
	}
	if err := fieldtool.Err(ErrFailed, rep.Results, "phone(s) did not accept the resync"); err != nil {
		fmt.Fprintf(w, "%d of %d phone(s) did not accept the resync.\n", rep.Failed(), len(rep.Results))
		return rep, err
	}
	fmt.Fprintf(w, "All %d phone(s) accepted.\n", len(rep.Results))
	return rep, nil
}

func (r Result) line() string {
	who := r.Target.Addr.String()
	if !r.Target.MAC.IsZero() {
		who = r.Target.MAC.String() + " at " + who
	}
	if r.OK() {
		return fmt.Sprintf("ok      %s: %d %s (%s, %d sent)", who, r.Status, r.Reason, r.Elapsed.Round(time.Millisecond), r.Sent)
	}
	return fmt.Sprintf("FAILED  %s: %s", who, r.Error)
}

type answer struct {
	status int
	reason string
	from   string
}

// dispatcher hands each received response to the target waiting on its Call-ID.
type dispatcher struct {
	mu      sync.Mutex
	waiting map[string]chan answer
}

func (d *dispatcher) register(callID string) chan answer {
	ch := make(chan answer, 8)
	d.mu.Lock()
	d.waiting[callID] = ch
	d.mu.Unlock()
	return ch
}

func (d *dispatcher) unregister(callID string) {
	d.mu.Lock()
	delete(d.waiting, callID)
	d.mu.Unlock()
}

func (d *dispatcher) readLoop(conn *net.UDPConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // socket closed by Run
		}
		callID, a, ok := parseAnswer(buf[:n])
		if !ok {
			continue
		}
		a.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port()).String()
		d.mu.Lock()
		ch := d.waiting[callID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- a:
			default: // a flood of retransmitted answers; the first ones suffice
			}
		}
	}
}

// parseAnswer extracts the Call-ID and status of a SIP response. Anything
// else (requests, garbage) is rejected.
func parseAnswer(b []byte) (callID string, a answer, ok bool) {
	msg, err := sip.ParseMessage(b)
	if err != nil {
		return "", a, false
	}
	res, isRes := msg.(*sip.Response)
	if !isRes || res.CallID() == nil {
		return "", a, false
	}
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.NOTIFY {
		return "", a, false
	}
	return res.CallID().Value(), answer{status: res.StatusCode, reason: res.Reason}, true
}

func poke(ctx context.Context, conn *net.UDPConn, localPort int, d *dispatcher, t Target, o Options) Result {
	res := Result{Target: t}
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start) }()
	if err := ctx.Err(); err != nil {
		// Stopped while this phone waited for its turn: send nothing.
		res.Error = fmt.Sprintf("not sent: stopped before its turn (%v)", context.Cause(ctx))
		return res
	}

	dst := net.UDPAddrFromAddrPort(t.Addr)
	localIP, err := sourceIPFor(dst)
	if err != nil {
		res.Error = fmt.Sprintf("no route to %s (%v); check that this host is on the phones' LAN", t.Addr, err)
		return res
	}
	callID := randomHex(12) + "@" + localIP.String()
	msg := buildNotify(t.Addr, netip.AddrPortFrom(localIP, uint16(localPort)), callID, randomHex(8), randomHex(6), o.Reboot)
	ch := d.register(callID)
	defer d.unregister(callID)

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	interval := timerT1
	timer := time.NewTimer(0)
	defer timer.Stop()
	var provisional *answer
	for {
		select {
		case <-ctx.Done():
			switch {
			case provisional != nil:
				res.Answered = true
				res.From = provisional.from
				res.Error = fmt.Sprintf("answered %d %s but sent no final response within %s; the phone may be busy, try again", provisional.status, provisional.reason, o.Timeout)
			case res.Sent == 0:
				res.Error = fmt.Sprintf("could not send: %v", ctx.Err())
			case parent.Err() != nil:
				res.Error = fmt.Sprintf("stopped before the phone answered (%d NOTIFYs sent): %v", res.Sent, context.Cause(parent))
			default:
				res.Error = fmt.Sprintf("no answer within %s (%d NOTIFYs sent); the phone is off, has another IP now, or drops SIP from this host. Check its address with `snomprov phones`", o.Timeout, res.Sent)
			}
			return res
		case <-timer.C:
			if _, err := conn.WriteToUDP(msg, dst); err != nil {
				res.Error = fmt.Sprintf("send to %s failed: %v; check the address and this host's network", t.Addr, err)
				return res
			}
			res.Sent++
			timer.Reset(interval)
			interval = min(2*interval, timerT2)
		case a := <-ch:
			if a.status < 200 {
				provisional = &a
				interval = timerT2 // RFC 3261 17.1.2.2: retransmit at T2 once a provisional arrived
				continue
			}
			res.Answered, res.Status, res.Reason, res.From = true, a.status, a.reason, a.from
			if !res.OK() {
				res.Error = fmt.Sprintf("answered %d %s: %s", a.status, a.reason, adviceFor(a.status))
			}
			return res
		}
	}
}

// adviceFor says what to do about a refusal.
func adviceFor(status int) string {
	switch {
	case status == 401 || status == 407 || status == 403:
		return "the phone only accepts check-sync from its registrar or with credentials; resync it from the PBX, or reboot it"
	case status == 481 || status == 489:
		return "the phone's firmware does not accept check-sync; reboot it to re-provision"
	case status >= 300 && status < 400:
		return "the phone redirected the request; resync it at the address it names"
	default:
		return "the phone refused the request; reboot it to re-provision"
	}
}

// buildNotify writes the check-sync request by hand so every header is
// exactly as documented in the package comment.
func buildNotify(phoneAddr, local netip.AddrPort, callID, branch, tag string, reboot bool) []byte {
	event := "check-sync;reboot=false"
	if reboot {
		event = "check-sync;reboot=true"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "NOTIFY sip:%s SIP/2.0\r\n", phoneAddr)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:snomprov@%s>;tag=%s\r\n", local.Addr(), tag)
	fmt.Fprintf(&b, "To: <sip:%s>\r\n", phoneAddr)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	b.WriteString("CSeq: 1 NOTIFY\r\n")
	fmt.Fprintf(&b, "Contact: <sip:snomprov@%s>\r\n", local)
	fmt.Fprintf(&b, "Event: %s\r\n", event)
	b.WriteString("Subscription-State: terminated\r\n")
	b.WriteString("User-Agent: snomprov\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

// sourceIPFor asks the kernel which local address reaches dst. Connecting a
// UDP socket sends nothing.
func sourceIPFor(dst *net.UDPAddr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, dst)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
