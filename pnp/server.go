// Package pnp is the SIP multicast plug-and-play responder. Snom phones (and
// phones of other vendors using the same scheme) send a SUBSCRIBE with
// "Event: ua-profile" to 224.0.1.75:5060 on boot; the responder answers 200 OK
// and then sends a NOTIFY whose body is the setting server URL.
//
// Flow, one way: datagram → sipgo's parser → a PnP SUBSCRIBE? (strict about
// what is PnP, lenient about form; everything else is dropped without a
// word, so other people's multicast never gets a 405 or 481) → decide (the
// answer policy) → 200 OK + NOTIFY, both sipgo messages → inventory events.
//
// The responder reads its sockets with a loop of its own
// (ReadMsgUDPAddrPort, so each datagram comes with the interface it arrived
// on, and a socket error stops Serve with that error) and uses sipgo's sip
// package for every message: parsing, the 200 (sip.NewResponseFromRequest)
// and the NOTIFY. Repeats (same Call-ID, CSeq and From tag, since old Snoms
// send no Via branch) get the same 200 again and no second NOTIFY, and the
// phone's 200 to the NOTIFY is matched by our branch. The NOTIFY is
// retransmitted on timers of our own (exchange.go says why not sipgo's
// client transaction), at most Options.MaxPending at a time: past that cap a
// new phone's NOTIFY is sent once, not retransmitted, and counted as shed
// (Shed, /metrics), so a flood of SUBSCRIBEs whose NOTIFYs are never
// answered costs bounded memory and every phone is still answered.
//
// Sockets (docs/go-libraries.md §2): normally one socket bound to
// 0.0.0.0:Port (without SO_REUSEADDR, so nothing is shared silently) that
// joins the group on each interface and also sends the 200 OK and the NOTIFY,
// with our own Via (the interface address, Port, a fresh branch) so the
// phone's 200 comes back to it (recipe M7). When another program already holds
// the port — a PBX on the same host — the responder binds the group address
// itself, which only receives group traffic, and sends NOTIFYs from a second,
// ephemeral unicast socket (recipe M6). If even the group address cannot be
// bound, Bind fails and names the process holding the port.
//
// The host in the URL is our address on the interface the SUBSCRIBE came in
// on (IP_PKTINFO ipi_spec_dst). The NOTIFY is retransmitted on RFC 3261 timer
// E until the phone's 200 arrives or Options.NotifyTimeout passes; both
// outcomes go into the inventory (step pnp, kinds SUBSCRIBE, IGNORED,
// NOTIFY-ACKED, NOTIFY-TIMEOUT, NOTIFY-REJECTED, NOTIFY-FAILED).
package pnp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// Options configure the responder. The zero value of each field has a default.
type Options struct {
	// Interfaces to join the group on. Empty: every up, multicast-capable,
	// non-loopback interface with an IPv4 address.
	Interfaces []string
	// Port is the SIP port phones send to; default 5060.
	Port int
	// Answer is the policy: "snom" (default when empty), "configured", "all"
	// or "none" (record only).
	Answer string
	// Configured reports whether a MAC is in [[phones]]; used by "configured".
	Configured func(phone.MAC) bool
	// URL returns the setting server URL for a SUBSCRIBE that came in on the
	// interface whose address is local. Placeholders like {mac} are left for
	// the phone to fill. Default: http://<local>/.
	URL func(local netip.Addr) string
	// RecordOnlyHint is logged once when a phone is seen but not answered,
	// e.g. how to enable answering.
	RecordOnlyHint string
	// NotifyTimeout bounds how long the NOTIFY is retransmitted without a
	// 200 from the phone; default 8s.
	NotifyTimeout time.Duration
	// MaxPending caps the NOTIFYs retransmitted while they wait for the
	// phone's 200; default 2048. Past it a new phone still gets its 200 and
	// one NOTIFY, without retransmissions, and the NOTIFY counts as shed.
	MaxPending int
}

// defaultMaxPending is far above a boot storm's need (a thousand phones
// answer within milliseconds) and bounds a flood to a few MB of NOTIFYs.
const defaultMaxPending = 2048

func (o Options) withDefaults() Options {
	if o.Port == 0 {
		o.Port = 5060
	}
	if o.Answer == "" {
		o.Answer = AnswerSnom
	}
	if o.NotifyTimeout <= 0 {
		o.NotifyTimeout = 8 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = defaultMaxPending
	}
	if o.URL == nil {
		o.URL = func(local netip.Addr) string { return "http://" + local.String() + "/" }
	}
	return o
}

// Server is the PnP responder.
type Server struct {
	log    *slog.Logger
	inv    inventory.Recorder
	opts   atomic.Pointer[Options]
	parser *sip.Parser // sipgo's; read-only, shared by the read loops

	// Set by Bind.
	recv       conn // gets the SUBSCRIBEs, sends the 200s
	notify     conn // sends the NOTIFYs and gets their 200s (recv unless shared)
	port       int  // recv's port
	notifyPort int  // notify's port, for our Via and Contact
	shared     bool // M6: group-bound, port held by someone else
	ifaces     map[int]netip.Addr
	fallback   netip.Addr // first interface's address, if pktinfo is missing

	seen *seenCache

	pmu     sync.Mutex
	pending map[string]*pendingNotify // by Via branch
	closed  bool

	hintOnce   atomic.Bool
	dropped    atomic.Uint64 // datagrams that were neither a PnP SUBSCRIBE nor a response
	shed       atomic.Uint64 // NOTIFYs sent without retransmission: MaxPending reached
	shedLog    limiter
	timeoutLog limiter
}

// pendingNotify is a NOTIFY waiting for the phone's 200.
type pendingNotify struct {
	branch   string
	msg      []byte
	dst      netip.AddrPort
	obs      inventory.Observation
	start    time.Time
	interval time.Duration
	deadline time.Time
	timer    *time.Timer
}

// New validates the options and prepares the responder. It opens no socket.
func New(o Options, log *slog.Logger, inv inventory.Recorder) (*Server, error) {
	p, err := Prepare(o)
	if err != nil {
		return nil, err
	}
	return p.NewServer(log, inv)
}

// NewServer prepares the SIP stack for prepared options. It opens no socket.
func (p *Prepared) NewServer(log *slog.Logger, inv inventory.Recorder) (*Server, error) {
	o := p.o
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if inv == nil {
		inv = inventory.Discard
	}
	s := &Server{log: log, inv: inv, parser: sip.NewParser(),
		// 64*T1: as long as an RFC 3261 server transaction absorbs repeats.
		seen:       newSeenCache(64 * timerT1),
		pending:    make(map[string]*pendingNotify),
		shedLog:    limiter{every: 10 * time.Second},
		timeoutLog: limiter{every: 10 * time.Second},
	}
	s.opts.Store(&o)
	return s, nil
}

// Shed is the number of NOTIFYs sent once without retransmission because
// Options.MaxPending NOTIFYs were already waiting for their phones.
func (s *Server) Shed() uint64 { return s.shed.Load() }

// Bind opens the sockets and joins the group. It runs entirely on the calling
// goroutine (tests call it inside a network namespace).
func (s *Server) Bind(ctx context.Context) error {
	if s.recv != nil {
		return errors.New("Bind called twice")
	}
	o := s.opts.Load()
	ifis, err := interfaces(o.Interfaces)
	if err != nil {
		return err
	}
	s.ifaces = make(map[int]netip.Addr, len(ifis))
	for i := range ifis {
		addr, ok := firstIPv4(&ifis[i])
		if !ok {
			return fmt.Errorf("interface %s has no IPv4 address, so there is no URL to hand phones: give it one or choose another in [pnp] interfaces", ifis[i].Name)
		}
		s.ifaces[ifis[i].Index] = addr
		if !s.fallback.IsValid() {
			s.fallback = addr
		}
	}

	conn, err := listenWildcard(o.Port)
	switch {
	case err == nil:
		s.notify = conn
		s.notifyPort = o.Port
	case errors.Is(err, syscall.EADDRINUSE):
		holder := portHolder(o.Port)
		if conn, err = listenGroup(o.Port); err != nil {
			return bindError(fmt.Sprintf("%s:%d", Group, o.Port), o.Port, err)
		}
		uni, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			conn.Close()
			return fmt.Errorf("open the unicast socket for NOTIFYs: %w", err)
		}
		s.shared = true
		s.notify = uni
		s.notifyPort = uni.LocalAddr().(*net.UDPAddr).Port
		if holder == "" {
			holder = "another program"
		}
		s.log.Warn("UDP port is held by another program; PnP shares the host: it receives only group traffic and sends NOTIFYs from its own port",
			"port", o.Port, "holder", holder, "group", Group.String(), "notify_port", s.notifyPort)
	default:
		return fmt.Errorf("cannot listen on UDP port %d: %w", o.Port, err)
	}
	fail := func(err error) error {
		conn.Close()
		if s.notify != nil && s.notify != conn {
			s.notify.Close()
		}
		s.notify = nil
		return err
	}
	if err := setsockopts(conn); err != nil {
		return fail(fmt.Errorf("socket options: %w", err))
	}
	if err := joinGroup(conn, ifis); err != nil {
		return fail(fmt.Errorf("%w (is the interface multicast-capable with a route for 224.0.0.0/4?)", err))
	}
	s.recv = conn
	s.port = o.Port
	return nil
}

// Serve answers phones until ctx is done, then closes the sockets and
// drops the NOTIFYs still being retransmitted. It returns nil only after ctx
// is done; a socket that fails before (a read error, or closed under it)
// stops it with that error.
func (s *Server) Serve(ctx context.Context) error {
	if s.recv == nil {
		return errors.New("Serve called before Bind")
	}
	o := s.opts.Load()
	names := make([]string, 0, len(s.ifaces))
	for _, a := range s.ifaces {
		names = append(names, a.String())
	}
	slices.Sort(names)
	s.log.Info("PnP responder listening", "group", Group.String(), "port", o.Port, "addresses", names,
		"answer", o.Answer, "shared_port", s.shared, "notify_port", s.notifyPort, "max_pending", o.MaxPending)
	if o.Answer == AnswerNone {
		s.logHint(o)
	}

	socks := []conn{s.recv}
	errc := make(chan error, 2)
	go func() { errc <- readLoop(s.recv, s.onDatagram) }()
	if s.shared {
		// The unicast socket only gets the phones' answers to our NOTIFYs.
		socks = append(socks, s.notify)
		go func() { errc <- readLoop(s.notify, s.onNotifySocket) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case e := <-errc:
		err = fmt.Errorf("reading the SIP socket failed, PnP stopped: %w", e)
	}
	for _, c := range socks {
		c.Close()
	}
	for range len(socks) - 1 {
		<-errc // the other loops, now ending on the closed socket
	}
	if err == nil {
		<-errc
	}
	// NOTIFYs still waiting are dropped: the phone asks again on its next boot.
	s.pmu.Lock()
	s.closed = true
	for _, p := range s.pending {
		p.timer.Stop()
	}
	clear(s.pending)
	s.pmu.Unlock()
	return err
}

// Reload swaps the URL and the answer policy. NOTIFYs already being
// retransmitted keep the URL they were sent with. Interfaces and port are
// bound to sockets and need a restart.
func (s *Server) Reload(o Options) error {
	p, err := Prepare(o)
	if err != nil {
		return err
	}
	if err := s.RestartNeeded(p); err != nil {
		return err
	}
	s.Apply(p)
	return nil
}

// RestartNeeded reports, as an error, whether p changes what is bound to
// sockets (the interfaces or the port).
func (s *Server) RestartNeeded(p *Prepared) error {
	o, old := p.o, s.opts.Load()
	if o.Port != old.Port || !slices.Equal(o.Interfaces, old.Interfaces) {
		return errors.New("[pnp] interfaces or the port changed: restart snomprov to apply that (nothing was reloaded)")
	}
	return nil
}

// Apply swaps prepared options in; it cannot fail. The caller has refused
// what RestartNeeded reports: interfaces and port keep their values.
func (s *Server) Apply(p *Prepared) {
	o, old := p.o, s.opts.Load()
	o.Port, o.Interfaces = old.Port, old.Interfaces
	if o.Answer != old.Answer {
		s.hintOnce.Store(false)
	}
	s.opts.Store(&o)
}

// onDatagram handles what arrives on the group socket: PnP SUBSCRIBEs are
// answered, responses are matched to pending NOTIFYs, everything else is
// dropped without a word.
func (s *Server) onDatagram(data []byte, src netip.AddrPort, arr arrival, known bool) {
	msg, err := parseDatagram(s.parser, data)
	if err != nil {
		s.dropped.Add(1)
		return
	}
	switch m := msg.(type) {
	case *sip.Response:
		s.onResponse(m)
	case *sip.Request:
		sub, err := subscribeOf(m, data)
		if err != nil {
			s.dropped.Add(1)
			return
		}
		s.onSubscribe(m, sub, src, arr, known)
	}
}

// onNotifySocket handles what arrives on the unicast NOTIFY socket of the
// shared mode: only the phones' answers to our NOTIFYs.
func (s *Server) onNotifySocket(data []byte, _ netip.AddrPort, _ arrival, _ bool) {
	if msg, err := parseDatagram(s.parser, data); err == nil {
		if res, ok := msg.(*sip.Response); ok {
			s.onResponse(res)
			return
		}
	}
	s.dropped.Add(1)
}

func (s *Server) onSubscribe(req *sip.Request, sub Subscribe, src netip.AddrPort, arr arrival, known bool) {
	o := s.opts.Load()
	local := s.fallback
	if known {
		if _, ours := s.ifaces[arr.ifIndex]; !ours {
			s.log.Debug("SUBSCRIBE on an interface not in [pnp] interfaces ignored", "source", src, "ifindex", arr.ifIndex)
			return
		}
		local = arr.local
	}
	obs := inventory.Observation{MAC: sub.MAC, Model: sub.Model(), Firmware: sub.Firmware(), IP: src.Addr()}
	decision, reason := decide(sub, o.Answer, o.Configured)
	if decision == RecordOnly {
		if o.Answer == AnswerNone {
			s.logHint(o)
		}
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindIgnored, OK: false, Detail: "seen, not answered: " + reason}
		s.inv.Record(obs)
		s.log.Debug("PnP SUBSCRIBE recorded, not answered", "mac", sub.MAC, "source", src, "reason", reason)
		return
	}

	// Same Call-ID, CSeq and From tag as one already answered (a
	// retransmission; old Snoms send no branch): the same 200 again, no
	// second NOTIFY.
	fromTag, _ := req.From().Params.Get("tag")
	toTag, dup := s.seen.tag(req.CallID().Value() + "\x00" + req.CSeq().Value() + "\x00" + fromTag)
	dst := replyDest(req.Via(), src)
	ok := build200(req, src, toTag, local, s.notifyPort)
	buf := bufPool.Get().(*bytes.Buffer)
	_, err := s.recv.WriteToUDPAddrPort(encode(buf, ok), dst)
	bufPool.Put(buf)
	if err != nil {
		s.log.Warn("PnP: sending 200 OK failed", "mac", sub.MAC, "to", dst, "err", err)
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyFailed, OK: false, Detail: "200 OK to SUBSCRIBE could not be sent: " + err.Error()}
		s.inv.Record(obs)
		return
	}
	if dup {
		s.log.Debug("repeated PnP SUBSCRIBE answered again, no second NOTIFY", "mac", sub.MAC, "source", src)
		return
	}
	url := o.URL(local)
	branch := "z9hG4bK" + randomToken()
	var nb bytes.Buffer
	buildNotify(req, ok, sub.Event, src, local, s.notifyPort, branch, url).StringWrite(&nb)
	now := time.Now()
	p := &pendingNotify{
		branch:   branch,
		msg:      nb.Bytes(),
		dst:      dst,
		obs:      obs,
		start:    now,
		interval: timerT1,
		deadline: now.Add(o.NotifyTimeout),
	}
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		return
	}
	pending := len(s.pending)
	retransmit := pending < o.MaxPending
	if retransmit {
		s.pending[branch] = p
		p.timer = time.AfterFunc(timerT1, func() { s.retransmit(p) })
	}
	s.pmu.Unlock()
	// Recorded before sending, so the phone's 200 can never be recorded first.
	shown := redact.URL(url) // a Basic-auth password stays out of the timeline and the log
	detail := "NOTIFY sent, url=" + shown
	if !retransmit {
		detail = fmt.Sprintf("NOTIFY sent once, without retransmissions (%d NOTIFYs already waiting for their phones), url=%s", pending, shown)
		s.shed.Add(1)
		if ok, suppressed := s.shedLog.allow(now); ok {
			s.log.Warn("PnP: too many NOTIFYs waiting for their phones' answer; new phones get one NOTIFY without retransmissions (a flood, or phones that cannot answer)",
				"pending", pending, "max_pending", o.MaxPending, "mac", sub.MAC, "shed_since_last_log", suppressed+1, "shed_total", s.shed.Load())
		}
	}
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindSubscribe, OK: true, Detail: detail}
	s.inv.Record(obs)
	if _, err := s.notify.WriteToUDPAddrPort(p.msg, dst); err != nil {
		// Timer E retries; a persistent error ends in a timeout.
		s.log.Debug("PnP: sending NOTIFY failed, will retry", "mac", sub.MAC, "to", dst, "err", err)
	}
	s.log.Debug("PnP NOTIFY sent", "mac", sub.MAC, "to", dst, "url", shown, "retransmitted", retransmit)
}

// retransmit runs on timer E: resend, double the interval up to T2, give
// up at the deadline.
func (s *Server) retransmit(p *pendingNotify) {
	s.pmu.Lock()
	if s.closed || s.pending[p.branch] != p {
		s.pmu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(p.deadline) {
		delete(s.pending, p.branch)
		s.pmu.Unlock()
		s.timedOut(p.obs, now.Sub(p.start))
		return
	}
	p.interval = min(2*p.interval, timerT2)
	p.timer.Reset(min(p.interval, p.deadline.Sub(now)))
	s.pmu.Unlock()
	if _, err := s.notify.WriteToUDPAddrPort(p.msg, p.dst); err != nil {
		s.log.Debug("PnP: NOTIFY retransmission failed", "mac", p.obs.MAC, "to", p.dst, "err", err)
	}
}

// onResponse matches the phone's answer to a pending NOTIFY by its branch.
func (s *Server) onResponse(res *sip.Response) {
	if res.StatusCode < 200 {
		return // provisional: keep retransmitting until the final answer
	}
	via, cseq := res.Via(), res.CSeq()
	if via == nil || cseq == nil || cseq.MethodName != sip.NOTIFY {
		s.dropped.Add(1)
		return
	}
	branch, _ := via.Params.Get("branch")
	s.pmu.Lock()
	p, ok := s.pending[branch]
	if ok {
		delete(s.pending, branch)
		p.timer.Stop()
	}
	s.pmu.Unlock()
	if !ok {
		return // a repeat of an answer already taken, a NOTIFY sent once, or not ours
	}
	obs := p.obs
	if res.StatusCode < 300 {
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyAcked, OK: true, Detail: "NOTIFY acknowledged"}
		s.log.Debug("PnP NOTIFY acknowledged", "mac", obs.MAC, "after", time.Since(p.start))
	} else {
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyRejected, OK: false,
			Detail: fmt.Sprintf("phone answered the NOTIFY with %d %s", res.StatusCode, res.Reason)}
		s.log.Warn("PnP NOTIFY rejected by the phone", "mac", obs.MAC, "status", res.StatusCode, "reason", res.Reason)
	}
	s.inv.Record(obs)
}

func (s *Server) timedOut(obs inventory.Observation, after time.Duration) {
	after = after.Round(100 * time.Millisecond)
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyTimeout, OK: false,
		Detail: fmt.Sprintf("NOTIFY timed out: no 200 OK from the phone after %s of retransmissions", after)}
	s.inv.Record(obs)
	if ok, suppressed := s.timeoutLog.allow(time.Now()); ok {
		s.log.Warn("PnP NOTIFY timed out: the phone never confirmed it (firewall on the phone's path, or it stopped listening)",
			"mac", obs.MAC, "ip", obs.IP, "after", after, "more_timeouts_not_logged", suppressed)
	}
}

func (s *Server) logHint(o *Options) {
	if s.hintOnce.Swap(true) {
		return
	}
	hint := o.RecordOnlyHint
	if hint == "" {
		hint = `set answer = "snom" (or "configured"/"all") in [pnp] to answer phones`
	}
	s.log.Info("PnP is recording phones without answering them (answer=none)", "hint", hint)
}

// seenCache remembers the To-tag each SUBSCRIBE was answered with, so a
// repeat gets the same 200 and no second NOTIFY. Entries are small (a 64-bit
// hash of the key, the tag as a number, the time): at a sustained 5000
// SUBSCRIBEs/s over the 32 s TTL that is about 8 MB.
type seenCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[uint64]seenEntry
	swept   time.Time
}

type seenEntry struct {
	tag uint64
	at  int64 // unix nanoseconds
}

const maxSeen = 1 << 20

func newSeenCache(ttl time.Duration) *seenCache {
	return &seenCache{ttl: ttl, now: time.Now, entries: make(map[uint64]seenEntry)}
}

// tag returns the To-tag for key and whether key was already answered.
func (c *seenCache) tag(key string) (string, bool) {
	h := fnv.New64a()
	h.Write([]byte(key))
	k := h.Sum64()
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok && now.UnixNano()-e.at < int64(c.ttl) {
		return strconv.FormatUint(e.tag, 36), true
	}
	if now.Sub(c.swept) > c.ttl || len(c.entries) >= maxSeen {
		cutoff := now.UnixNano() - int64(c.ttl)
		for k, e := range c.entries {
			if e.at <= cutoff {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxSeen {
			clear(c.entries)
		}
		c.swept = now
	}
	t := rand.Uint64()
	c.entries[k] = seenEntry{tag: t, at: now.UnixNano()}
	return strconv.FormatUint(t, 36), false
}

// limiter lets one log line through per interval and counts the ones it
// held back, so a flood cannot flood the journal too.
type limiter struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were held back since the
// last line that was let through.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
