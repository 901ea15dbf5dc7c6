package httpd

// The keep-alive fast path.
//
// Phones fetch a few small, pre-rendered settings files per boot, and a
// boot storm is many of them at once. net/http spends most of its time on
// such a request in bookkeeping the files do not need: a goroutine that
// watches the connection during every request, deadlines and a context per
// request. That cost shows as the tail: p99 of 7-8 ms under load where
// nginx has 2.5 ms (docs/benchmarks.md).
//
// So every plain-HTTP connection starts here. A request this file fully
// understands - GET or HEAD of a settings file that will be answered 200
// or 304, HTTP/1.1, CRLF, a valid Host, no body, nothing escaped in the
// path - is answered from the pre-rendered bytes with the same decision
// code net/http runs. On the first request that is anything else, the
// connection and every byte read from it so far go to net/http, which
// keeps the connection from then on. So error answers, firmware images,
// the status page and HTTPS are all net/http's, and the fast path never
// writes an error. TestFastPathSameBytes checks that both paths send the
// same bytes for the same request.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fastReadBuffer holds a phone's request head (about 300 bytes) many
// times over; a longer head goes to net/http, which applies maxHeaderBytes.
const fastReadBuffer = 4096

// fastConn is one connection on the fast path.
type fastConn struct {
	c net.Conn
	// idle is true while waiting for the next request, when shutdown may
	// close the connection.
	idle atomic.Bool
}

// fastConns tracks the fast path's connections for shutdown.
type fastConns struct {
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup
	closing atomic.Bool
}

func (f *fastConns) add(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	if f.conns == nil {
		f.conns = make(map[*fastConn]struct{})
	}
	f.conns[fc] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *fastConns) remove(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	f.wg.Done()
}

// shutdown wakes the idle connections so they close; busy ones close after
// their current response.
func (f *fastConns) shutdown() {
	f.closing.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		if fc.idle.Load() {
			fc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
}

func (f *fastConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		fc.c.Close()
	}
}

// wait returns once every connection is closed (true) or timeout is
// closed (false); a nil timeout waits for good.
func (f *fastConns) wait(timeout <-chan struct{}) bool {
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-timeout:
		return false
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// acceptFast accepts plain-HTTP connections for the fast path until ln is
// closed. Temporary errors (out of file descriptors) back off as net/http
// does.
func (s *Server) acceptFast(ln net.Listener) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.fast.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() { //nolint:staticcheck // what net/http's accept loop does too
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				if ok, dropped := s.warn.allow(); ok {
					s.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff, "suppressed", dropped)
				}
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		fc := &fastConn{c: c}
		if !s.fast.add(fc) {
			c.Close()
			continue
		}
		go s.serveFast(fc)
	}
}

// serveFast answers requests on one connection until it closes, idles out,
// or a request needs net/http.
func (s *Server) serveFast(fc *fastConn) {
	defer s.fast.remove(fc)
	c := fc.c
	br := bufio.NewReaderSize(c, fastReadBuffer)
	// The requester's address, parsed once for all its requests.
	var remote netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		remote = ta.AddrPort().Addr().Unmap()
	}
	// As net/http: a bug met by one request costs its connection, not the
	// appliance.
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic while serving a connection; closed it", "ip", remote, "panic", v, "stack", string(debug.Stack()))
			c.Close()
		}
	}()
	var out []byte // responses not yet written (pipelined requests)
	// As net/http: a new connection has readHeaderTimeout for its first
	// head; between requests it may idle for idleTimeout.
	wait, first := readHeaderTimeout, true
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		fc.idle.Store(true)
		if s.fast.closing.Load() {
			c.Close()
			return
		}
		if _, err := br.Peek(1); err != nil {
			c.Close()
			return
		}
		fc.idle.Store(false)
		// The first head's deadline runs from the accept; a later one's
		// from its first byte.
		n, err := readHead(c, br, !first)
		wait, first = idleTimeout, false
		if err != nil {
			// A timeout or EOF inside a head: net/http closes too.
			c.Close()
			return
		}
		var req request
		var closeConn bool
		ok := n > 0
		if ok {
			b, _ := br.Peek(n)
			closeConn, ok = parseHead(string(b), &req)
		}
		if ok {
			req.ip = remote
			out, ok = s.answerFast(&req, closeConn, out)
		}
		if !ok {
			if len(out) > 0 && !s.writeOut(c, out) {
				return
			}
			s.handoff(c, br)
			return
		}
		br.Discard(n)
		if br.Buffered() == 0 || closeConn || len(out) >= 64<<10 {
			if !s.writeOut(c, out) {
				return
			}
			if closeConn {
				c.Close()
				return
			}
			if cap(out) > 16<<10 {
				out = nil // an idle connection keeps no large buffer
			}
			out = out[:0]
		}
	}
}

// writeOut sends the pending responses; on failure it closes c.
func (s *Server) writeOut(c net.Conn, out []byte) bool {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.Write(out); err != nil {
		c.Close()
		return false
	}
	return true
}

// handoff gives the connection, with the bytes read ahead, to net/http.
func (s *Server) handoff(c net.Conn, br *bufio.Reader) {
	c.SetDeadline(time.Time{}) // net/http sets its own
	hc := &handedConn{Conn: c}
	if br.Buffered() > 0 {
		hc.buf = br
	}
	if !s.handoffLn.give(hc) {
		c.Close()
	}
}

// readHead waits until a whole request head is buffered and returns its
// length, or 0 when it does not fit the buffer. With setDeadline it gives
// the rest of the head readHeaderTimeout.
func readHead(c net.Conn, br *bufio.Reader, setDeadline bool) (int, error) {
	deadline := !setDeadline
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf); n > 0 {
			return n, nil
		}
		if len(buf) == br.Size() {
			return 0, nil
		}
		if !deadline {
			c.SetReadDeadline(time.Now().Add(readHeaderTimeout))
			deadline = true
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return 0, err
		}
	}
}

// headEnd returns the length of the head up to and including its empty
// line, accepting bare LF line ends (which parseHead then leaves to
// net/http), or 0.
func headEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return 0
}

// parseHead reads a request head into req. It accepts only requests the
// fast path may answer and returns ok = false for everything else, which
// net/http then reads from the start: any method but GET and HEAD, any
// version but HTTP/1.1, a target that is not a plain origin-form path
// (%-escapes, fragments, absolute form, non-ASCII), a bare LF, an invalid
// or repeated field, a missing or unusual Host, and any sign of a body or
// protocol switch (Content-Length, Transfer-Encoding, Expect, Upgrade).
// closeConn reports a Connection: close.
func parseHead(head string, req *request) (closeConn, ok bool) {
	line, rest, found := strings.Cut(head, "\r\n")
	if !found {
		return false, false
	}
	var target string
	switch {
	case strings.HasPrefix(line, "GET "):
		req.method, target = "GET", line[4:]
	case strings.HasPrefix(line, "HEAD "):
		req.method, target = "HEAD", line[5:]
	default:
		return false, false
	}
	target, found = strings.CutSuffix(target, " HTTP/1.1")
	if !found || target == "" || target[0] != '/' {
		return false, false
	}
	req.path, req.rawQuery, _ = strings.Cut(target, "?")
	for i := 0; i < len(req.path); i++ {
		if c := req.path[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '#' {
			return false, false
		}
	}
	for i := 0; i < len(req.rawQuery); i++ {
		if c := req.rawQuery[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false, false
		}
	}
	// The fields the decision reads; each may appear once.
	fields := [...]struct {
		name string
		dst  *string
	}{
		{"Host", &req.host},
		{"User-Agent", &req.userAgent},
		{"Authorization", &req.authorization},
		{"If-None-Match", &req.ifNoneMatch},
		{"If-Modified-Since", &req.ifModifiedSince},
	}
	var seen [len(fields)]bool
	for rest != "\r\n" {
		line, rest, found = strings.Cut(rest, "\r\n")
		if !found {
			return false, false
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false, false
		}
		name, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		if !isFieldValue(value) {
			return false, false
		}
		switch {
		case strings.EqualFold(name, "Connection"):
			closeConn = closeConn || hasCloseToken(value)
			continue
		case strings.EqualFold(name, "Content-Length"), strings.EqualFold(name, "Transfer-Encoding"),
			strings.EqualFold(name, "Expect"), strings.EqualFold(name, "Upgrade"):
			return false, false
		}
		for i := range fields {
			if strings.EqualFold(name, fields[i].name) {
				if seen[i] {
					return false, false
				}
				seen[i] = true
				*fields[i].dst = value
				break
			}
		}
	}
	if !seen[0] || !validHost(req.host) {
		return false, false
	}
	return closeConn, true
}

// isToken: RFC 9110 token characters.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// isFieldValue: visible ASCII, space and tab. (net/http also takes bytes
// above 0x7f; such a request goes to it.)
func isFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

func hasCloseToken(v string) bool {
	for v != "" {
		var tok string
		tok, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.Trim(tok, " \t"), "close") {
			return true
		}
	}
	return false
}

// answerFast appends the answer to req to out, or returns ok = false when
// the answer is not a settings file's 200 or 304.
func (s *Server) answerFast(req *request, closeConn bool, out []byte) ([]byte, bool) {
	st := s.state.Load()
	rt := route(req.path, &st.tpl)
	switch rt.Kind {
	case RouteGeneral, RoutePhone, RouteCombined, RouteFirmwareFile, RoutePart:
	default:
		return out, false
	}
	id := identify(req, st, &rt)
	if !st.checkAuth(req) {
		return out, false
	}
	a := settingsAnswer(st, req, rt, &id)
	if a.status != 200 && a.status != 304 {
		return out, false
	}
	s.warnMismatch(req, id)
	s.warnLANMAC(req, id)
	// The fields and their order are net/http's for the same answer:
	// handler fields sorted, then Date, then Connection.
	if a.status == 200 {
		out = append(out, "HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Length: "...)
		out = append(out, a.doc.LengthHeader[0]...)
		out = append(out, "\r\nContent-Type: "...)
		out = append(out, xmlContentType[0]...)
		out = append(out, "\r\nEtag: "...)
	} else {
		out = append(out, "HTTP/1.1 304 Not Modified\r\nCache-Control: no-cache\r\nEtag: "...)
	}
	out = append(out, a.doc.ETagHeader[0]...)
	out = append(out, "\r\nLast-Modified: "...)
	out = append(out, st.lastModified[0]...)
	out = append(out, "\r\nDate: "...)
	out = s.date.append(out, time.Now())
	if closeConn {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	n := 0
	if a.status == 200 {
		if req.method != "HEAD" {
			out = append(out, a.doc.Body...)
		}
		n = len(a.doc.Body)
	}
	s.fastServed.Add(1)
	s.record(req, id, stepFor(rt.Kind), a.status, n, "")
	return out, true
}

// dateCache formats the Date field once a second.
type dateCache struct{ v atomic.Pointer[dateValue] }

type dateValue struct {
	unix int64
	text string
}

func (d *dateCache) append(b []byte, now time.Time) []byte {
	sec := now.Unix()
	if v := d.v.Load(); v != nil && v.unix == sec {
		return append(b, v.text...)
	}
	v := &dateValue{unix: sec, text: now.UTC().Format(http1Date)}
	d.v.Store(v)
	return append(b, v.text...)
}

// http1Date is net/http's TimeFormat.
const http1Date = "Mon, 02 Jan 2006 15:04:05 GMT"

// handoffListener is how net/http receives the connections the fast path
// hands over.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give hands c to net/http; false once the server shuts down.
func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// handedConn replays the bytes the fast path read ahead, then reads the
// connection.
type handedConn struct {
	net.Conn
	buf *bufio.Reader // nil once drained
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.buf != nil {
		if c.buf.Buffered() > 0 {
			return c.buf.Read(p)
		}
		c.buf = nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile for firmware images: net/http looks for it on
// the connection.
func (c *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http close gracefully after an error answer.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
