package httpd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/syncbuf"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/provision"
)

// startPair runs two servers on the same options and catalog: one with the
// fast path, one with net/http alone.
func startPair(t *testing.T, cfg *config.Config, mutate func(*Options)) (fast, slow *harness) {
	t.Helper()
	o := testOptions(t, cfg, mutate)
	return serve(t, o, false), serve(t, o, true)
}

// exchange writes raw to a new connection and reads until the server
// closes it.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	return string(b)
}

var dateField = regexp.MustCompile(`\r\nDate: [^\r]*`)

// TestFastPathSameBytes sends each request, followed on the same
// connection by a closing request, to both servers: the bytes must be
// equal but for Date, and the fast path must answer exactly the requests
// it is meant to.
func TestFastPathSameBytes(t *testing.T) {
	fast, slow := startPair(t, testConfig(), nil)
	const closing = "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	ua := "User-Agent: " + uaD785 + "\r\n"
	long := "X-Padding: " + strings.Repeat("p", 5000) + "\r\n"
	tests := []struct {
		name string
		req  string
		fast int // requests the fast path answers, closing one included
	}{
		{"per-MAC file", "GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ua + "\r\n", 2},
		{"per-MAC file, lower-case MAC and field names", "GET /snomD785-000413a11fa7.htm HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: " + uaD785 + "\r\n\r\n", 2},
		{"HEAD", "HEAD /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2},
		{"general file", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", 2},
		{"general file, model from the User-Agent", "GET /snomD785.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ua + "\r\n", 2},
		{"firmware file", "GET /snomD785-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2},
		{"firmware file in the model directory", "GET /snomD785/snomD785-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2},
		{"?mac=", "GET /snomD785.htm?mac=000413A11FA7 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2},
		{"If-None-Match *", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: *\r\n\r\n", 2},
		{"If-Modified-Since", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n", 2},
		{"Connection: close", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Close\r\n\r\n", 1},
		{"double slash", "GET //snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2},
		{"User-Agent MAC differs", "GET /snomD785-000413B22FB8.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ua + "\r\n", 2},
		// net/http's: the connection is handed over and stays there.
		{"unknown MAC: 404", "GET /snomD785-0004130000FF.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"model without firmware: 404", "GET /snomD345-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"firmware image", "GET /firmware/snomD785-10.1.215.13-SIP-r.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"settings, then an image, pipelined", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /firmware/snomD785-10.1.215.13-SIP-r.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 1},
		{"firmware image range", "GET /firmware/snomD785-10.1.215.13-SIP-r.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=10-19\r\n\r\n", 0},
		{"POST", "POST /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc", 0},
		{"GET with a body", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc", 0},
		{"chunked", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0},
		{"Expect", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\r\n", 0},
		{"HTTP/1.0", "GET /snomD345.htm HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n", 0},
		{"escaped path", "GET /snomD%33%345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"traversal", "GET /firmware/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"absolute form", "GET http://127.0.0.1/snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"no Host: 400", "GET /snomD345.htm HTTP/1.1\r\n\r\n", 0},
		{"two Hosts: 400", "GET /snomD345.htm HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0},
		{"bad Host: 400", "GET /snomD345.htm HTTP/1.1\r\nHost: a b\r\n\r\n", 0},
		{"bare LF", "GET /snomD345.htm HTTP/1.1\nHost: 127.0.0.1\n\n", 0},
		{"folded field: 400", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n", 0},
		{"space before colon: 400", "GET /snomD345.htm HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 0},
		{"control byte in a field: 400", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x01b\r\n\r\n", 0},
		{"non-ASCII User-Agent", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t\xc3\xa9l\xc3\xa9phone\r\n\r\n", 0},
		{"head longer than the buffer", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + long + "\r\n", 0},
		{"status page path", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 0},
		{"garbage", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sameAnswers(t, fast, slow, tt.req+closing, int64(tt.fast))
			if !strings.HasPrefix(got, "HTTP/1.") {
				t.Errorf("no HTTP answer: %q", trimFor(got))
			}
		})
	}
	if slow.srv.fastServed.Load() != 0 {
		t.Error("the net/http-only server used the fast path")
	}
	// Both recorded the same events in the inventory.
	if f, s := fast.rec.count(), slow.rec.count(); f != s {
		t.Errorf("inventory events: fast %d, net/http %d", f, s)
	}
}

func trimFor(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}

// TestFastPathBasicAuth: good credentials are answered fast, bad ones by
// net/http with 401.
func TestFastPathBasicAuth(t *testing.T) {
	fast, slow := startPair(t, testConfig(), func(o *Options) { o.Username, o.Password = "prov", "s3cret:x" })
	good := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("prov:s3cret:x")) + "\r\n"
	bad := "Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("prov:wrong")) + "\r\n"
	const closing = "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" // + auth + CRLF
	for _, tt := range []struct {
		name, auth string
		fast       int64
	}{{"good", good, 2}, {"wrong password", bad, 0}, {"none", "", 0}} {
		raw := "GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + tt.auth + "\r\n" + closing + tt.auth + "\r\n"
		t.Run(tt.name, func(t *testing.T) { sameAnswers(t, fast, slow, raw, tt.fast) })
	}
}

// sameAnswers sends raw to both servers and checks that they answer the
// same bytes but for Date, and that the fast path answered wantFast of the
// requests. It returns the fast path's answer.
func sameAnswers(t *testing.T, fast, slow *harness, raw string, wantFast int64) string {
	t.Helper()
	before := fast.srv.fastServed.Load()
	got := dateField.ReplaceAllString(exchange(t, fast.srv.Addr().String(), raw), "")
	if n := fast.srv.fastServed.Load() - before; n != wantFast {
		t.Errorf("fast path answered %d requests, want %d", n, wantFast)
	}
	want := dateField.ReplaceAllString(exchange(t, slow.srv.Addr().String(), raw), "")
	if got != want {
		t.Errorf("answers differ\nfast path:\n%q\nnet/http:\n%q", trimFor(got), trimFor(want))
	}
	return got
}

// TestFastPathKeepAlive: a client reusing one connection gets settings
// (fast path), then an image (net/http), then settings again (net/http
// keeps the connection), all correct.
func TestFastPathKeepAlive(t *testing.T) {
	h := start(t, testConfig(), nil)
	c, err := net.Dial("tcp", h.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	ask := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://127.0.0.1"+path, nil)
		req.Header.Set("User-Agent", uaD785)
		if err := req.Write(c); err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return r
	}
	for i, p := range []string{"/snomD785-000413A11FA7.htm", "/snomD785.htm", "/firmware/snomD785-10.1.215.13-SIP-r.bin", "/snomD785-000413A11FA7.htm"} {
		r := ask(p)
		b, err := io.ReadAll(r.Body)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("request %d %s: %d %v", i, p, r.StatusCode, err)
		}
		if strings.HasPrefix(p, "/firmware/") && !bytes.Equal(b, firmwareImage) {
			t.Errorf("image: %d bytes, not the file", len(b))
		}
		if strings.HasSuffix(p, "A7.htm") && !strings.Contains(string(b), "topsecret401") {
			t.Errorf("request %d: not phone A's file", i)
		}
	}
	if n := h.srv.fastServed.Load(); n != 2 {
		t.Errorf("fast path answered %d requests, want the 2 before the image", n)
	}
}

// TestFastPathPipelined: requests sent back to back are answered in order.
func TestFastPathPipelined(t *testing.T) {
	h := start(t, testConfig(), nil)
	var raw strings.Builder
	for i := 0; i < 50; i++ {
		raw.WriteString("GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nHEAD /snomD785-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	}
	raw.WriteString("GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	got := exchange(t, h.srv.Addr().String(), raw.String())
	br := bufio.NewReader(strings.NewReader(got))
	for i := 0; i < 101; i++ {
		method := "GET"
		if i%2 == 1 && i < 100 {
			method = "HEAD"
		}
		r, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("answer %d: %d", i, r.StatusCode)
		}
		wantRoot := "settings"
		if method == "HEAD" {
			wantRoot = ""
		}
		if wantRoot != "" && !strings.Contains(string(b), "<settings>") {
			t.Fatalf("answer %d: %q", i, b)
		}
		if i == 100 && !strings.Contains(string(b), "topsecret401") {
			t.Errorf("last answer is not phone A's file")
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("%d bytes after the last answer", len(rest))
	}
	if n := h.srv.fastServed.Load(); n != 101 {
		t.Errorf("fast path answered %d, want 101", n)
	}
}

// TestFastPathShutdownClosesIdle: an idle keep-alive connection does not
// hold up shutdown, and is closed.
func TestFastPathShutdownClosesIdle(t *testing.T) {
	cat, _ := provision.New(testConfig())
	s, err := New(Options{Listen: "127.0.0.1:0", Catalog: cat}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	if err := s.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(c)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("first answer: %v", err)
	} else {
		io.ReadAll(r.Body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(shutdownTimeout - time.Second):
		t.Fatal("Serve waited for an idle connection")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection after shutdown: read %d, %v; want EOF", n, err)
	}
}

func TestParseHead(t *testing.T) {
	tests := []struct {
		head      string
		ok, close bool
		want      request
	}{
		{head: "GET /a.htm HTTP/1.1\r\nHost: h\r\n\r\n", ok: true, want: request{method: "GET", path: "/a.htm", host: "h"}},
		{head: "HEAD /a.htm?mac=1&x=%20 HTTP/1.1\r\nHOST:h:80\r\nUser-Agent:  ua 1 \t\r\nauthorization: Basic x\r\nIf-None-Match: \"e\"\r\nIf-Modified-Since: d\r\nConnection: foo, close\r\n\r\n",
			ok: true, close: true,
			want: request{method: "HEAD", path: "/a.htm", rawQuery: "mac=1&x=%20", host: "h:80", userAgent: "ua 1", authorization: "Basic x", ifNoneMatch: `"e"`, ifModifiedSince: "d"}},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", ok: true, want: request{method: "GET", path: "/a", host: "h"}},
		{head: "get /a HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a HTTP/1.1 \r\nHost: h\r\n\r\n"},
		{head: "GET  /a HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a HTTP/2.0\r\nHost: h\r\n\r\n"},
		{head: "GET * HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a%2f HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a?b#c HTTP/1.1\r\nHost: h\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nupgrade: h2c\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost: h\n\r\n"},
		{head: "GET /a HTTP/1.1\r\nHost:\r\n\r\n"},
		{head: "GET /a HTTP/1.1\r\n\r\n"},
	}
	for _, tt := range tests {
		var got request
		closeConn, ok := parseHead(tt.head, &got)
		if ok != tt.ok || (ok && (closeConn != tt.close || got != tt.want)) {
			t.Errorf("parseHead(%q) = %+v close=%v ok=%v; want %+v close=%v ok=%v", tt.head, got, closeConn, ok, tt.want, tt.close, tt.ok)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for in, want := range map[string]int{
		"":                         0,
		"GET / HTTP/1.1\r\n":       0,
		"GET / HTTP/1.1\r\n\r\n":   18,
		"GET / HTTP/1.1\r\n\r\nX":  18,
		"GET / HTTP/1.1\n\nGET":    16,
		"GET / HTTP/1.1\r\nA: b\r": 0,
	} {
		if got := headEnd([]byte(in)); got != want {
			t.Errorf("headEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzParseHead holds the fast path's parser to net/http's: whatever it
// accepts, http.ReadRequest must read the same way.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 10.0.0.1\r\nUser-Agent: " + uaD785 + "\r\n\r\n"))
	f.Add([]byte("HEAD /x?mac=000413A11FA7 HTTP/1.1\r\nhost: h\r\nConnection: close\r\nIf-None-Match: *\r\n\r\n"))
	f.Add([]byte("GET //a/../b HTTP/1.1\r\nHost: [::1]:80\r\nAuthorization: Basic eDp5\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n == 0 {
			return
		}
		var req request
		closeConn, ok := parseHead(string(b[:n]), &req)
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if err != nil {
			t.Fatalf("fast path accepts %q, net/http refuses it: %v", b[:n], err)
		}
		h := r.Header
		got := request{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, host: r.Host,
			userAgent: h.Get("User-Agent"), authorization: h.Get("Authorization"),
			ifNoneMatch: h.Get("If-None-Match"), ifModifiedSince: h.Get("If-Modified-Since")}
		if got != req || closeConn != r.Close {
			t.Fatalf("%q\nfast path: %+v close=%v\nnet/http:  %+v close=%v", b[:n], req, closeConn, got, r.Close)
		}
	})
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// panickyRecorder panics on its first Record, like a bug would.
type panickyRecorder struct{ calls atomic.Int32 }

func (p *panickyRecorder) Record(inventory.Observation) {
	if p.calls.Add(1) == 1 {
		panic("boom")
	}
}

// TestFastPathPanicCostsOnlyTheConnection: a panic while answering closes
// that connection and is logged; the server keeps serving.
func TestFastPathPanicCostsOnlyTheConnection(t *testing.T) {
	cat, _ := provision.New(testConfig())
	logs := &syncbuf.Buffer{}
	s, err := New(Options{Listen: "127.0.0.1:0", Catalog: cat}, slog.New(slog.NewTextHandler(logs, nil)), &panickyRecorder{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	if err := s.Bind(ctx); err != nil {
		t.Fatal(err)
	}
	go s.Serve(ctx)
	const req = "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	if got := exchange(t, s.Addr().String(), req); got != "" {
		t.Errorf("the panicking request got %q, want the connection closed", trimFor(got))
	}
	if got := exchange(t, s.Addr().String(), req); !strings.HasPrefix(got, "HTTP/1.1 200 OK") {
		t.Errorf("the next request got %q", trimFor(got))
	}
	if !strings.Contains(logs.String(), "panic while serving a connection") || !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}
