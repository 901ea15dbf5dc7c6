// Package pnp is the SIP multicast plug-and-play responder. Snom phones (and
// phones of other vendors using the same scheme) send a SUBSCRIBE with
// "Event: ua-profile" to 224.0.1.75:5060 on boot; the responder answers 200 OK
// and then sends a NOTIFY whose body is the setting server URL.
//
// Flow, one way: datagram → ParseSubscribe (strict about what is PnP, lenient
// about form; everything else is dropped before sipgo sees it, so other
// people's multicast never gets a 405 or 481) → decide (the answer policy) →
// 200 OK + NOTIFY + inventory events.
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
	"log/slog"
	"net"
	"net/netip"
	"slices"
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
	cli *sipgo.Client

	// Set by Bind.
	recv        *pktinfoConn     // gets the SUBSCRIBEs
	conns       []net.PacketConn // every socket sipgo serves
	notifyLaddr sip.Addr         // pool key of the socket NOTIFYs leave from
	notifyPort  int              // its port, for our Via and Contact
	shared      bool             // M6: group-bound, port held by someone else
	ifaces      map[int]netip.Addr
	fallback    netip.Addr // first interface's address, if pktinfo is missing

	seen *seenCache

	baseCtx    context.Context // cancelled when Serve returns: stops NOTIFYs
	cancelBase context.CancelFunc
	inflight   sync.WaitGroup
	hintOnce   atomic.Bool
	dropped    atomic.Uint64 // datagrams that were not a PnP SUBSCRIBE
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
	s := &Server{log: log, inv: inv, seen: newSeenCache(2 * time.Minute)}
	s.opts.Store(&o)
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())

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
	if s.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet)); err != nil {
		return nil, fmt.Errorf("pnp: %w", err)
	}
	s.srv.OnSubscribe(s.onSubscribe)
	// The default answers 405 to every other method: stay silent instead.
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
		s.notifyLaddr = sip.Addr{IP: net.IPv4zero, Port: o.Port}
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
		s.notifyPort = uni.LocalAddr().(*net.UDPAddr).Port
		s.notifyLaddr = sip.Addr{IP: net.IPv4zero, Port: s.notifyPort}
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
	defer s.cancelBase()
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
	s.cancelBase()
	s.inflight.Wait()
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

// readFilter drops everything that is not a PnP SUBSCRIBE or a response
// (the phones' 200 to our NOTIFYs) before sipgo parses it.
func (s *Server) readFilter(_ sip.TransportReadProps, data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		return data, nil
	}
	if _, err := ParseSubscribe(data); err != nil {
		s.dropped.Add(1)
		return nil, nil
	}
	return data, nil
}

// subscribeFromRequest reads the PnP fields from sipgo's parsed request with
// the same rules as ParseSubscribe.
func subscribeFromRequest(req *sip.Request) (Subscribe, error) {
	var sub Subscribe
	if req.Method != sip.SUBSCRIBE {
		return sub, ErrNotSubscribe
	}
	ev := req.GetHeader("Event")
	if ev == nil {
		ev = req.GetHeader("o") // compact form
	}
	if ev == nil {
		return sub, ErrNotPnP
	}
	sub.Event = ev.Value()
	if !parseEvent(sub.Event, &sub) {
		return sub, ErrNotPnP
	}
	if ua := req.GetHeader("User-Agent"); ua != nil {
		sub.UserAgent = ua.Value()
	}
	if m, ok := ExtractMAC(req.Recipient.String()); ok {
		sub.MAC = m
	} else if to := req.To(); to != nil {
		if m, ok := ExtractMAC(to.Value()); ok {
			sub.MAC = m
		}
	}
	if sub.MAC.IsZero() {
		return sub, ErrNoMAC
	}
	return sub, nil
}

func (s *Server) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	o := s.opts.Load()
	sub, err := subscribeFromRequest(req)
	if err != nil {
		s.log.Debug("SUBSCRIBE ignored", "source", req.Source(), "reason", err)
		return
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return
	}
	local := s.fallback
	if a, ok := s.recv.arrival(src); ok {
		if _, ours := s.ifaces[a.ifIndex]; !ours {
			s.log.Debug("SUBSCRIBE on an interface not in [pnp] interfaces ignored", "source", src, "ifindex", a.ifIndex)
			return
		}
		local = a.local
	}
	obs := inventory.Observation{MAC: sub.MAC, Model: sub.Model(), Firmware: sub.Firmware(), IP: src.Addr()}
	decision, reason := decide(sub, o.Answer, o.Configured)
	if decision == RecordOnly {
		if o.Answer == AnswerNone {
			s.logHint(o)
		}
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "IGNORED", OK: false, Detail: "seen, not answered: " + reason}
		s.inv.Record(obs)
		s.log.Debug("PnP SUBSCRIBE recorded, not answered", "mac", sub.MAC, "source", src, "reason", reason)
		return
	}

	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	toTag, dup := s.seen.tag(dedupeKey(req), func() string { t, _ := res.To().Params.Get("tag"); return t })
	res.To().Params.Add("tag", toTag)
	res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s:%d>", local, s.notifyPort)))
	res.AppendHeader(sip.NewHeader("Expires", "0"))
	if err := tx.Respond(res); err != nil {
		s.log.Warn("PnP: sending 200 OK failed", "mac", sub.MAC, "source", src, "error", err)
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "NOTIFY-FAILED", OK: false, Detail: "200 OK to SUBSCRIBE failed: " + err.Error()}
		s.inv.Record(obs)
		return
	}
	if dup {
		// Same Call-ID, CSeq and From tag as one already answered: same 200, no second NOTIFY.
		s.log.Debug("repeated PnP SUBSCRIBE answered again, no second NOTIFY", "mac", sub.MAC, "source", src)
		return
	}
	url := o.URL(local)
	n := s.buildNotify(req, res, sub, src, local, url)
	s.inflight.Add(1)
	go s.notify(n, obs, url, o.NotifyTimeout)
}

// buildNotify makes the NOTIFY that carries the URL: in the SUBSCRIBE's
// dialog (From/To swapped, our To-tag), our own Via with a fresh branch so
// the phone's 200 comes back to this socket, sent to where the 200 OK went.
func (s *Server) buildNotify(req *sip.Request, res *sip.Response, sub Subscribe, src netip.AddrPort, local netip.Addr, url string) *sip.Request {
	target := sip.Uri{Scheme: "sip", Host: src.Addr().String(), Port: int(src.Port())}
	if c := req.Contact(); c != nil && c.Address.Host != "" {
		target = *c.Address.Clone()
	}
	n := sip.NewRequest(sip.NOTIFY, target)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: local.String(), Port: s.notifyPort, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	n.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	n.AppendHeader(&mf)
	from := res.To().AsFrom()
	to := req.From().AsTo()
	n.AppendHeader(&from)
	n.AppendHeader(&to)
	cid := sip.CallIDHeader(req.CallID().Value())
	n.AppendHeader(&cid)
	n.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	n.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<sip:%s:%d>", local, s.notifyPort)))
	n.AppendHeader(sip.NewHeader("Event", sub.Event))
	n.AppendHeader(sip.NewHeader("Subscription-State", "terminated;reason=timeout"))
	n.AppendHeader(sip.NewHeader("Content-Type", "application/url"))
	n.SetBody([]byte(url))
	n.SetDestination(replyAddr(req, src).String())
	n.Laddr = s.notifyLaddr
	return n
}

// replyAddr is where the 200 OK went (RFC 3261 18.2.2 with RFC 3581): the
// packet's source address, and its source port when the Via asks for rport
// or names none, else the Via port.
func replyAddr(req *sip.Request, src netip.AddrPort) netip.AddrPort {
	via := req.Via()
	if via == nil || via.Port == 0 || via.Params.Has("rport") {
		return src
	}
	return netip.AddrPortFrom(src.Addr(), uint16(via.Port))
}

func (s *Server) notify(n *sip.Request, obs inventory.Observation, url string, timeout time.Duration) {
	defer s.inflight.Done()
	ctx, cancel := context.WithTimeout(s.baseCtx, timeout)
	defer cancel()
	// Options given: sipgo must not add or change any header.
	tx, err := s.cli.TransactionRequest(ctx, n, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		s.log.Warn("PnP: sending NOTIFY failed", "mac", obs.MAC, "to", n.Destination(), "error", err)
		obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "NOTIFY-FAILED", OK: false, Detail: "NOTIFY could not be sent: " + err.Error()}
		s.inv.Record(obs)
		return
	}
	defer tx.Terminate()
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "SUBSCRIBE", OK: true, Detail: "NOTIFY sent, url=" + url}
	s.inv.Record(obs)
	s.log.Debug("PnP NOTIFY sent", "mac", obs.MAC, "to", n.Destination(), "url", url)
	start := time.Now()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if res.IsSuccess() {
				obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "NOTIFY-ACKED", OK: true, Detail: "NOTIFY acknowledged"}
				s.log.Debug("PnP NOTIFY acknowledged", "mac", obs.MAC, "after", time.Since(start))
			} else {
				obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "NOTIFY-REJECTED", OK: false,
					Detail: fmt.Sprintf("phone answered the NOTIFY with %d %s", res.StatusCode, res.Reason)}
				s.log.Warn("PnP NOTIFY rejected by the phone", "mac", obs.MAC, "status", res.StatusCode, "reason", res.Reason)
			}
			s.inv.Record(obs)
			return
		case <-tx.Done():
			s.timedOut(obs, time.Since(start), tx.Err())
			return
		case <-ctx.Done():
			if s.baseCtx.Err() != nil {
				return // shutting down: the phone will ask again on its next boot
			}
			s.timedOut(obs, time.Since(start), ctx.Err())
			return
		}
	}
}

func (s *Server) timedOut(obs inventory.Observation, after time.Duration, err error) {
	after = after.Round(100 * time.Millisecond)
	obs.Event = inventory.Event{Step: inventory.StepPnP, Kind: "NOTIFY-TIMEOUT", OK: false,
		Detail: fmt.Sprintf("NOTIFY timed out: no 200 OK from the phone after %s of retransmissions", after)}
	s.inv.Record(obs)
	s.log.Warn("PnP NOTIFY timed out: the phone never confirmed it (firewall on the phone's path, or it stopped listening)",
		"mac", obs.MAC, "ip", obs.IP, "after", after, "error", err)
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

// dedupeKey identifies a SUBSCRIBE for retransmission matching: Call-ID,
// CSeq and From tag (the RFC 2543 fields, since old Snoms send no branch).
func dedupeKey(req *sip.Request) string {
	var cid, cseq, tag string
	if h := req.CallID(); h != nil {
		cid = h.Value()
	}
	if h := req.CSeq(); h != nil {
		cseq = h.Value()
	}
	if h := req.From(); h != nil {
		tag, _ = h.Params.Get("tag")
	}
	return cid + "\x00" + cseq + "\x00" + tag
}

// seenCache remembers the To-tag each SUBSCRIBE was answered with, so a
// repeat after sipgo's transaction has ended gets the same 200 and no second
// NOTIFY.
type seenCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]seenEntry
	swept   time.Time
}

type seenEntry struct {
	tag string
	at  time.Time
}

const maxSeen = 1 << 17

func newSeenCache(ttl time.Duration) *seenCache {
	return &seenCache{ttl: ttl, now: time.Now, entries: make(map[string]seenEntry)}
}

// tag returns the To-tag for key and whether key was already answered;
// newTag is called only for a first sighting.
func (c *seenCache) tag(key string, newTag func() string) (string, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && now.Sub(e.at) < c.ttl {
		return e.tag, true
	}
	if now.Sub(c.swept) > c.ttl || len(c.entries) >= maxSeen {
		for k, e := range c.entries {
			if now.Sub(e.at) >= c.ttl {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxSeen {
			clear(c.entries)
		}
		c.swept = now
	}
	t := newTag()
	c.entries[key] = seenEntry{tag: t, at: now}
	return t, false
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
