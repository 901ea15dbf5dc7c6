package httpd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/syncbuf"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/provision"
)

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

func trimFor(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}

// statuses reads every response in raw (answers to the requests whose
// methods are given, in order) and returns their status codes.
func statuses(t *testing.T, raw string, methods ...string) []int {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	var got []int
	for _, m := range methods {
		r, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			break
		}
		io.ReadAll(r.Body)
		got = append(got, r.StatusCode)
	}
	return got
}

// TestRawRequests sends requests as bytes, each followed on the same
// connection by a closing request, and checks what net/http answers:
// settings files in their Snom spellings, and every malformed or unusual
// head a scanner or a broken client sends.
func TestRawRequests(t *testing.T) {
	h := start(t, testConfig(), nil)
	const closing = "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	ua := "User-Agent: " + uaD785 + "\r\n"
	long := "X-Padding: " + strings.Repeat("p", 5000) + "\r\n"
	tests := []struct {
		name string
		req  string
		want []int // statuses, the closing request's included when it is read
	}{
		{"per-MAC file", "GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + ua + "\r\n", []int{200, 200}},
		{"per-MAC file, lower-case MAC and field names", "GET /snomD785-000413a11fa7.htm HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: " + uaD785 + "\r\n\r\n", []int{200, 200}},
		{"HEAD", "HEAD /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"general file", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", []int{200, 200}},
		{"firmware file in the model directory", "GET /snomD785/snomD785-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"?mac=", "GET /snomD785.htm?mac=000413A11FA7 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"If-None-Match *", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: *\r\n\r\n", []int{304, 200}},
		{"If-Modified-Since", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n", []int{304, 200}},
		{"Connection: close", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Close\r\n\r\n", []int{200}},
		{"double slash", "GET //snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"escaped path", "GET /snomD%33%345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"absolute form", "GET http://127.0.0.1/snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{200, 200}},
		{"unknown MAC", "GET /snomD785-0004130000FF.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{404, 200}},
		{"model without firmware", "GET /snomD345-firmware.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{404, 200}},
		{"firmware image range", "GET /firmware/snomD785-10.1.215.13-SIP-r.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=10-19\r\n\r\n", []int{206, 200}},
		{"traversal", "GET /firmware/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []int{404, 200}},
		{"POST", "POST /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc", []int{405, 200}},
		{"GET with a body", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc", []int{200, 200}},
		{"chunked", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200, 200}},
		{"HTTP/1.0", "GET /snomD345.htm HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", []int{200}},
		{"non-ASCII User-Agent", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t\xc3\xa9l\xc3\xa9phone\r\n\r\n", []int{200, 200}},
		{"a 5000-byte field", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + long + "\r\n", []int{200, 200}},
		{"no Host", "GET /snomD345.htm HTTP/1.1\r\n\r\n", []int{400}},
		{"two Hosts", "GET /snomD345.htm HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []int{400}},
		{"bad Host", "GET /snomD345.htm HTTP/1.1\r\nHost: a b\r\n\r\n", []int{400}},
		// net/http joins an obsolete folded line to the field before it.
		{"folded field", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n", []int{200, 200}},
		{"space before colon", "GET /snomD345.htm HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", []int{400}},
		// Chunked wins over Content-Length (RFC 9112 6.3): the body is the
		// empty chunk, so the next request is read where it starts.
		{"Content-Length and chunked", "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200, 200}},
		{"TLS on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", []int{400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.req + closing
			got := exchange(t, h.srv.Addr().String(), raw)
			methods := []string{"GET", "GET"}
			if strings.HasPrefix(tt.req, "HEAD") {
				methods[0] = "HEAD"
			}
			if s := statuses(t, got, methods...); !equalInts(s, tt.want) {
				t.Errorf("statuses %v, want %v\n%s", s, tt.want, trimFor(got))
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBasicAuthRaw: the Authorization scheme is case-insensitive and a
// password may hold a colon; wrong or missing credentials get 401 and the
// connection stays usable.
func TestBasicAuthRaw(t *testing.T) {
	h := start(t, testConfig(), func(o *Options) { o.Username, o.Password = "prov", "s3cret:x" })
	good := "Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("prov:s3cret:x")) + "\r\n"
	bad := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("prov:wrong")) + "\r\n"
	for _, tt := range []struct {
		name, auth string
		want       int
	}{{"good", good, 200}, {"wrong password", bad, 401}, {"none", "", 401}} {
		t.Run(tt.name, func(t *testing.T) {
			raw := "GET /snomD785-000413A11FA7.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n" + tt.auth + "\r\n" +
				"GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + good + "\r\n"
			got := exchange(t, h.srv.Addr().String(), raw)
			if s := statuses(t, got, "GET", "GET"); !equalInts(s, []int{tt.want, 200}) {
				t.Errorf("statuses %v, want [%d 200]", s, tt.want)
			}
			if tt.want == 401 && strings.Contains(got, "topsecret401") {
				t.Error("secret served without credentials")
			}
		})
	}
}

// TestKeepAlive: a client reusing one connection gets settings, an image
// and settings again, all correct.
func TestKeepAlive(t *testing.T) {
	h := start(t, testConfig(), nil)
	c, err := net.Dial("tcp", h.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i, p := range []string{"/snomD785-000413A11FA7.htm", "/snomD785.htm", "/firmware/snomD785-10.1.215.13-SIP-r.bin", "/snomD785-000413A11FA7.htm"} {
		req, _ := http.NewRequest("GET", "http://127.0.0.1"+p, nil)
		req.Header.Set("User-Agent", uaD785)
		if err := req.Write(c); err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("request %d %s: %v", i, p, err)
		}
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
}

// TestPipelined: requests sent back to back are answered in order.
func TestPipelined(t *testing.T) {
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
		if method == "GET" && !strings.Contains(string(b), "<settings>") {
			t.Fatalf("answer %d: %q", i, b)
		}
		if i == 100 && !strings.Contains(string(b), "topsecret401") {
			t.Errorf("last answer is not phone A's file")
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("%d bytes after the last answer", len(rest))
	}
}

// TestShutdownClosesIdle: an idle keep-alive connection does not hold up
// shutdown, and is closed.
func TestShutdownClosesIdle(t *testing.T) {
	cat, _ := provision.New(testConfig())
	s, err := New(Options{Listen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := running(t, s)
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

// panickyRecorder panics on its first Record, like a bug would.
type panickyRecorder struct{ calls atomic.Int32 }

func (p *panickyRecorder) Record(inventory.Observation) {
	if p.calls.Add(1) == 1 {
		panic("boom")
	}
}

// TestPanicCostsOnlyTheConnection: a panic while answering closes that
// connection and is logged at Error; the server keeps serving.
func TestPanicCostsOnlyTheConnection(t *testing.T) {
	cat, _ := provision.New(testConfig())
	logs := &syncbuf.Buffer{}
	s, err := New(Options{Listen: "127.0.0.1:0", Catalog: cat, CleartextPhones: plainA}, slog.New(slog.NewTextHandler(logs, nil)), &panickyRecorder{})
	if err != nil {
		t.Fatal(err)
	}
	cancel, _ := running(t, s)
	defer cancel()
	// The answer is written before its record (which panics), so the panic
	// must stop it from being used: the connection closes, unanswered.
	const req = "GET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /snomD345.htm HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	if got := statuses(t, exchange(t, s.Addr().String(), req), "GET", "GET"); len(got) > 1 {
		t.Errorf("the panicking connection answered %v, want it closed after the panic", got)
	}
	if got := exchange(t, s.Addr().String(), req); !strings.HasPrefix(got, "HTTP/1.1 200 OK") {
		t.Errorf("the next connection got %q", trimFor(got))
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "panic while serving a request") || !strings.Contains(l, "boom") {
		t.Errorf("panic not logged at Error:\n%s", l)
	}
}
