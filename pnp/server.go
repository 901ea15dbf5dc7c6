// Package pnp is the SIP multicast plug-and-play responder. Snom phones (and
// phones of other vendors using the same scheme) send a SUBSCRIBE with
// "Event: ua-profile" to 224.0.1.75:5060 on boot; the responder answers 200 OK
// and then sends a NOTIFY whose body is the setting server URL.
//
// Flow, one way: datagram → ParseSubscribe (strict about what is PnP, lenient
// about form; everything else is dropped without a word, so other people's
// multicast never gets a 405 or 481) → decide (the answer policy) → 200 OK +
// NOTIFY + inventory events.
//
// sipgo provides the listener (ServeUDP) and its read-filter hook; the filter
// does the whole exchange. The 200 and the NOTIFY are written from the
// SUBSCRIBE's raw header values, repeats (same Call-ID, CSeq and From tag,
// since old Snoms send no Via branch) are answered from a cache, and the
// phone's 200 to the NOTIFY is matched by our branch. Going through sipgo's
// message model and transaction layer instead cost three times the CPU per
// exchange of the minimal Python responder and lost to it under load
// (bench/results/pnp.md); this way it wins.
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

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

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
}

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
	if o.URL == nil {
		o.URL = func(local netip.Addr) string { return "http://" + local.String() + "/" }
	}
	return o
}

func (o Options) validate() error {
	if !validPolicy(o.Answer) {
		return fmt.Errorf("pnp: answer = %q: use \"snom\", \"configured\", \"all\" or \"none\"", o.Answer)
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("pnp: port %d is out of range 1-65535", o.Port)
	}
	return nil
}

// Server is the PnP responder.
type Server struct {
	log  *slog.Logger
	inv  inventory.Recorder
	opts atomic.Pointer[Options]

	ua  *sipgo.UserAgent
	srv *sipgo.Server

	// Set by Bind.
	recv       *pktinfoConn     // gets the SUBSCRIBEs, sends the 200s
	notifyConn *net.UDPConn     // sends the NOTIFYs and gets their 200s (recv's socket unless shared)
	conns      []net.PacketConn // every socket sipgo reads
	port       int              // recv's port
	notifyPort int              // notifyConn's port, for our Via and Contact
	shared     bool             // M6: group-bound, port held by someone else
	ifaces     map[int]netip.Addr
	fallback   netip.Addr // first interface's address, if pktinfo is missing

	seen *seenCache

	pmu     sync.Mutex
	pending map[string]*pendingNotify // by Via branch
	closed  bool

	hintOnce atomic.Bool
	dropped  atomic.Uint64 // datagrams that were neither a PnP SUBSCRIBE nor a response
	skipped  atomic.Uint64 // NOTIFY retransmissions skipped under overload
}

// maxRetransmitting is how many unanswered NOTIFYs may be retransmitted.
// A boot storm of a thousand phones stays far below it (they answer within
// milliseconds); a backlog above it means the other side is overloaded.
const maxRetransmitting = 1024

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

// New validates the options and prepares the SIP stack. It opens no socket.
func New(o Options, log *slog.Logger, inv inventory.Recorder) (*Server, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if inv == nil {
		inv = inventory.Discard
	}
	// 64*T1: as long as an RFC 3261 server transaction absorbs repeats.
	s := &Server{log: log, inv: inv, seen: newSeenCache(64 * timerT1), pending: make(map[string]*pendingNotify)}
	s.opts.Store(&o)

	// sipgo logs every unparsable datagram and stray response at Error/Info;
	// on a shared multicast group that is noise, so its records go to Debug.
	quiet := slog.New(debugOnly{log.Handler()}).With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("snomprov"),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(quiet),
			sip.WithTransportLayerReadFilter(s.readFilter),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(quiet),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {}),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("pnp: %w", err)
	}
	s.ua = ua
	if s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(quiet)); err != nil {
		return nil, fmt.Errorf("pnp: %w", err)
	}
	// The read filter consumes every datagram, so nothing reaches sipgo's
	// handlers; should one ever get through, the default would answer 405
	// to other people's multicast: stay silent instead.
	s.srv.OnNoRoute(func(*sip.Request, sip.ServerTransaction) {})
	return s, nil
}

// Bind opens the sockets and joins the group. It runs entirely on the calling
// goroutine (tests call it inside a network namespace).
func (s *Server) Bind(ctx context.Context) error {
	if s.recv != nil {
		return errors.New("pnp: Bind called twice")
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
			return fmt.Errorf("pnp: interface %s has no IPv4 address, so there is no URL to hand phones: give it one or choose another in [pnp] interfaces", ifis[i].Name)
		}
		s.ifaces[ifis[i].Index] = addr
		if !s.fallback.IsValid() {
			s.fallback = addr
		}
	}

	conn, err := listenWildcard(o.Port)
	switch {
	case err == nil:
		s.notifyConn = conn
		s.notifyPort = o.Port
	case errors.Is(err, syscall.EADDRINUSE):
		holder := portHolder(o.Port)
		if conn, err = listenGroup(o.Port); err != nil {
			return bindError(fmt.Sprintf("%s:%d", Group, o.Port), o.Port, err)
		}
		uni, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			conn.Close()
			return fmt.Errorf("pnp: open the unicast socket for NOTIFYs: %w", err)
		}
		s.shared = true
		s.notifyConn = uni
		s.notifyPort = uni.LocalAddr().(*net.UDPAddr).Port
		s.conns = append(s.conns, uni)
		if holder == "" {
			holder = "another program"
		}
		s.log.Warn("UDP port is held by another program; PnP shares the host: it receives only group traffic and sends NOTIFYs from its own port",
			"port", o.Port, "holder", holder, "group", Group.String(), "notify_port", s.notifyPort)
	default:
		return fmt.Errorf("pnp: cannot listen on UDP port %d: %w", o.Port, err)
	}
	if err := setsockopts(conn); err != nil {
		s.closeConns(conn)
		return fmt.Errorf("pnp: socket options: %w", err)
	}
	if err := joinGroup(conn, ifis); err != nil {
		s.closeConns(conn)
		return fmt.Errorf("pnp: %w (is the interface multicast-capable with a route for 224.0.0.0/4?)", err)
	}
	s.recv = newPktinfoConn(conn)
	s.port = o.Port
	s.conns = append([]net.PacketConn{s.recv}, s.conns...)
	return nil
}

func (s *Server) closeConns(extra net.PacketConn) {
	extra.Close()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// Serve answers phones until ctx is done, then stops the listeners and the
// NOTIFYs still being retransmitted. It returns nil only after ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	if s.recv == nil {
		return errors.New("pnp: Serve called before Bind")
	}
	defer s.ua.Close()
	o := s.opts.Load()
	names := make([]string, 0, len(s.ifaces))
	for _, a := range s.ifaces {
		names = append(names, a.String())
	}
	slices.Sort(names)
	s.log.Info("PnP responder listening", "group", Group.String(), "port", o.Port, "addresses", names,
		"answer", o.Answer, "shared_port", s.shared, "notify_port", s.notifyPort)
	if o.Answer == AnswerNone {
		s.logHint(o)
	}

	errc := make(chan error, len(s.conns))
	for _, c := range s.conns {
		go func() { errc <- s.srv.ServeUDP(c) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case e := <-errc:
		// sipgo returns nil even when the read loop died on an error.
		err = fmt.Errorf("pnp: listener stopped unexpectedly (%v); restart snomprov", e)
	}
	for _, c := range s.conns {
		c.Close()
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
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	old := s.opts.Load()
	if o.Port != old.Port || !slices.Equal(o.Interfaces, old.Interfaces) {
		return errors.New("pnp: [pnp] interfaces or the port changed: restart snomprov to apply that (nothing was reloaded)")
	}
	if o.Answer != old.Answer {
		s.hintOnce.Store(false)
	}
	s.opts.Store(&o)
	return nil
}

// readFilter is the responder: sipgo's read loop hands it every datagram
// and it consumes all of them, so sipgo itself never parses or answers
// anything. PnP SUBSCRIBEs are answered, responses are matched to pending
// NOTIFYs, everything else is dropped without a word.
func (s *Server) readFilter(props sip.TransportReadProps, data []byte) ([]byte, error) {
	src := netip.AddrPort{}
	if ua, ok := props.RemoteAddr.(*net.UDPAddr); ok {
		src = ua.AddrPort()
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	}
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		if res, ok := parseResponse(data); ok && res.method == "NOTIFY" {
			s.onResponse(res)
		} else {
			s.dropped.Add(1)
		}
		return nil, nil
	}
	r, err := parseRequest(data)
	if err != nil {
		s.dropped.Add(1)
		return nil, nil
	}
	var arr arrival
	var known bool
	if la, ok := props.LocalAddr.(*net.UDPAddr); ok && la.Port == s.port {
		arr, known = s.recv.lastArrival()
	}
	s.onSubscribe(&r, src, arr, known)
	return nil, nil
}

func (s *Server) onSubscribe(r *request, src netip.AddrPort, arr arrival, known bool) {
	o := s.opts.Load()
	local := s.fallback
	if known {
		if _, ours := s.ifaces[arr.ifIndex]; !ours {
			s.log.Debug("SUBSCRIBE on an interface not in [pnp] interfaces ignored", "source", src, "ifindex", arr.ifIndex)
			return
		}
		local = arr.local
	}
	obs := inventory.Observation{MAC: r.MAC, Model: r.Model(), Firmware: r.Firmware(), IP: src.Addr()}
	decision, reason := decide(r.Subscribe, o.Answer, o.Configured)
	if decision == RecordOnly {
		if o.Answer == AnswerNone {
			s.logHint(o)
		}
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindIgnored, OK: false, Detail: "seen, not answered: " + reason}
		s.inv.Record(obs)
		s.log.Debug("PnP SUBSCRIBE recorded, not answered", "mac", r.MAC, "source", src, "reason", reason)
		return
	}

	// Same Call-ID, CSeq and From tag as one already answered (a
	// retransmission; old Snoms send no branch): the same 200 again, no
	// second NOTIFY.
	toTag, dup := s.seen.tag(r.callID + "\x00" + r.cseq + "\x00" + r.fromTag)
	if t := toTagOf(r); t != "" {
		toTag = t // a refresh inside an existing dialog keeps its tag
	}
	dst := replyDest(r.vias[0], src)
	bp := bufPool.Get().(*[]byte)
	ok := build200((*bp)[:0], r, src, toTag, local, s.notifyPort)
	_, err := s.recv.WriteToUDPAddrPort(ok, dst)
	*bp = ok
	bufPool.Put(bp)
	if err != nil {
		s.log.Warn("PnP: sending 200 OK failed", "mac", r.MAC, "to", dst, "error", err)
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyFailed, OK: false, Detail: "200 OK to SUBSCRIBE could not be sent: " + err.Error()}
		s.inv.Record(obs)
		return
	}
	if dup {
		s.log.Debug("repeated PnP SUBSCRIBE answered again, no second NOTIFY", "mac", r.MAC, "source", src)
		return
	}
	url := o.URL(local)
	branch := "z9hG4bK" + randomToken()
	now := time.Now()
	p := &pendingNotify{
		branch:   branch,
		msg:      buildNotify(make([]byte, 0, 640+len(url)), r, src, toTag, local, s.notifyPort, branch, url),
		dst:      dst,
		obs:      obs,
		start:    now,
		interval: timerT1,
		deadline: now.Add(o.NotifyTimeout),
	}
	// Recorded before sending, so the phone's 200 can never be recorded first.
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindSubscribe, OK: true, Detail: "NOTIFY sent, url=" + url}
	s.inv.Record(obs)
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		return
	}
	s.pending[branch] = p
	p.timer = time.AfterFunc(timerT1, func() { s.retransmit(p) })
	s.pmu.Unlock()
	if _, err := s.notifyConn.WriteToUDPAddrPort(p.msg, dst); err != nil {
		// Timer E retries; a persistent error ends in a timeout.
		s.log.Debug("PnP: sending NOTIFY failed, will retry", "mac", r.MAC, "to", dst, "error", err)
	}
	s.log.Debug("PnP NOTIFY sent", "mac", r.MAC, "to", dst, "url", url)
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
	// Overload control (the problem RFC 5390 describes): with this many
	// NOTIFYs unanswered, the phones' side is queueing, not losing, and
	// retransmitting would double the load on it until everything fails.
	// Skip this copy; the next timer tick tries again.
	overloaded := len(s.pending) > maxRetransmitting
	s.pmu.Unlock()
	if overloaded {
		s.skipped.Add(1)
		return
	}
	if _, err := s.notifyConn.WriteToUDPAddrPort(p.msg, p.dst); err != nil {
		s.log.Debug("PnP: NOTIFY retransmission failed", "mac", p.obs.MAC, "to", p.dst, "error", err)
	}
}

// onResponse matches the phone's answer to a pending NOTIFY by its branch.
func (s *Server) onResponse(res response) {
	if res.code < 200 {
		return // provisional: keep retransmitting until the final answer
	}
	s.pmu.Lock()
	p, ok := s.pending[res.branch]
	if ok {
		delete(s.pending, res.branch)
		p.timer.Stop()
	}
	s.pmu.Unlock()
	if !ok {
		return // a repeat of an answer already taken, or not ours
	}
	obs := p.obs
	if res.code < 300 {
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyAcked, OK: true, Detail: "NOTIFY acknowledged"}
		s.log.Debug("PnP NOTIFY acknowledged", "mac", obs.MAC, "after", time.Since(p.start))
	} else {
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyRejected, OK: false,
			Detail: fmt.Sprintf("phone answered the NOTIFY with %d %s", res.code, res.reason)}
		s.log.Warn("PnP NOTIFY rejected by the phone", "mac", obs.MAC, "status", res.code, "reason", res.reason)
	}
	s.inv.Record(obs)
}

func (s *Server) timedOut(obs inventory.Observation, after time.Duration) {
	after = after.Round(100 * time.Millisecond)
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: inventory.KindNotifyTimeout, OK: false,
		Detail: fmt.Sprintf("NOTIFY timed out: no 200 OK from the phone after %s of retransmissions", after)}
	s.inv.Record(obs)
	s.log.Warn("PnP NOTIFY timed out: the phone never confirmed it (firewall on the phone's path, or it stopped listening)",
		"mac", obs.MAC, "ip", obs.IP, "after", after)
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

// debugOnly demotes every record to Debug.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.h.Handle(ctx, r)
}

func (d debugOnly) WithAttrs(a []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(a)} }
func (d debugOnly) WithGroup(n string) slog.Handler      { return debugOnly{d.h.WithGroup(n)} }
