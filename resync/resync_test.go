package resync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/phone"
)

// fakePhone is a UDP endpoint on loopback that answers NOTIFYs the way
// the test case says.
type fakePhone struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []*sip.Request
}

// behaviour decides the answers for the n-th received NOTIFY (0-based).
type behaviour func(n int) []int

func startFakePhone(t *testing.T, answer behaviour) *fakePhone {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePhone{conn: c}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			req, ok := msg.(*sip.Request)
			if !ok {
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, req)
			count := len(p.got) - 1
			p.mu.Unlock()
			for _, code := range answer(count) {
				res := sip.NewResponseFromRequest(req, code, reasonFor(code), nil)
				_, _ = c.WriteToUDP([]byte(res.String()), from)
			}
		}
	}()
	return p
}

func reasonFor(code int) string {
	return map[int]string{100: "Trying", 200: "OK", 401: "Unauthorized", 481: "Call/Transaction Does Not Exist"}[code]
}

func (p *fakePhone) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *fakePhone) requests() []*sip.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sip.Request(nil), p.got...)
}

func TestRun(t *testing.T) {
	mac, _ := phone.ParseMAC("000413A11FA7")
	tests := []struct {
		name       string
		answer     behaviour
		reboot     bool
		wantOK     bool
		wantStatus int
		wantSent   func(int) bool
		wantErr    string
	}{
		{"answers 200 at once", func(int) []int { return []int{200} }, false, true, 200, func(n int) bool { return n == 1 }, ""},
		{"reboot answers 200", func(int) []int { return []int{200} }, true, true, 200, func(n int) bool { return n == 1 }, ""},
		{"first copy lost, retransmission answered", func(n int) []int {
			if n == 0 {
				return nil
			}
			return []int{200}
		}, false, true, 200, func(n int) bool { return n == 2 }, ""},
		{"provisional then final", func(n int) []int {
			if n == 0 {
				return []int{100}
			}
			return []int{200}
		}, false, true, 200, func(n int) bool { return n >= 2 }, ""},
		{"refuses with 401", func(int) []int { return []int{401} }, false, false, 401, func(n int) bool { return n == 1 }, "registrar"},
		{"never answers", func(int) []int { return nil }, false, false, 0, func(n int) bool { return n >= 3 }, "no answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startFakePhone(t, tt.answer)
			var out bytes.Buffer
			rep, err := Run(context.Background(), Options{
				Targets: []Target{{MAC: mac, Addr: p.addr()}},
				Reboot:  tt.reboot,
				Timeout: 2 * time.Second,
			}, &out)
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v\n%s", err, tt.wantOK, out.String())
			}
			if err != nil && !errors.Is(err, ErrFailed) {
				t.Errorf("error %v does not wrap ErrFailed", err)
			}
			r := rep.Results[0]
			if r.Status != tt.wantStatus || r.OK() != tt.wantOK {
				t.Errorf("result = %+v", r)
			}
			if !tt.wantSent(r.Sent) {
				t.Errorf("sent %d NOTIFYs", r.Sent)
			}
			if tt.wantErr != "" && !strings.Contains(r.Error, tt.wantErr) {
				t.Errorf("error text %q lacks %q", r.Error, tt.wantErr)
			}
			if !strings.Contains(out.String(), "000413A11FA7") {
				t.Errorf("report does not name the phone:\n%s", out.String())
			}
			reqs := p.requests()
			if len(reqs) == 0 {
				t.Fatal("phone got nothing")
			}
			checkNotify(t, reqs[0], p.addr(), tt.reboot)
			// Retransmissions are the same transaction.
			for _, r := range reqs[1:] {
				if r.CallID().Value() != reqs[0].CallID().Value() || r.Via().Params.GetOr("branch", "") != reqs[0].Via().Params.GetOr("branch", "") {
					t.Errorf("retransmission is a new transaction: %s", r.String())
				}
			}
		})
	}
}

func checkNotify(t *testing.T, r *sip.Request, to netip.AddrPort, reboot bool) {
	t.Helper()
	if r.Method != sip.NOTIFY || r.Recipient.Host != to.Addr().String() || r.Recipient.Port != int(to.Port()) {
		t.Errorf("request line: %s %s", r.Method, r.Recipient.String())
	}
	want := "check-sync;reboot=false"
	if reboot {
		want = "check-sync;reboot=true"
	}
	if ev := r.GetHeader("Event"); ev == nil || ev.Value() != want {
		t.Errorf("Event = %v, want %s", ev, want)
	}
	via := r.Via()
	if via == nil || !strings.HasPrefix(via.Params.GetOr("branch", ""), "z9hG4bK") || !via.Params.Has("rport") {
		t.Errorf("Via = %v", via)
	}
	if via != nil && (via.Host != "127.0.0.1" || via.Port == 0) {
		t.Errorf("Via sent-by = %s:%d", via.Host, via.Port)
	}
	if tag, _ := r.From().Params.Get("tag"); tag == "" {
		t.Errorf("From has no tag: %v", r.From())
	}
	if r.To().Params.Has("tag") {
		t.Errorf("out-of-dialog To has a tag: %v", r.To())
	}
	if r.CallID() == nil || r.CSeq() == nil || r.CSeq().MethodName != sip.NOTIFY || r.CSeq().SeqNo != 1 {
		t.Errorf("Call-ID/CSeq: %v %v", r.CallID(), r.CSeq())
	}
	if mf := r.MaxForwards(); mf == nil || mf.Val() != 70 {
		t.Errorf("Max-Forwards = %v", mf)
	}
	if r.Contact() == nil {
		t.Error("no Contact")
	}
	if cl := r.ContentLength(); cl == nil || cl.Value() != "0" {
		t.Errorf("Content-Length = %v", cl)
	}
}

func TestRunSeveralPhones(t *testing.T) {
	good := startFakePhone(t, func(int) []int { return []int{200} })
	silent := startFakePhone(t, func(int) []int { return nil })
	var out bytes.Buffer
	start := time.Now()
	rep, err := Run(context.Background(), Options{
		Targets: []Target{{Addr: good.addr()}, {Addr: silent.addr()}},
		Timeout: 1500 * time.Millisecond,
	}, &out)
	if err == nil || rep.Failed() != 1 {
		t.Fatalf("err=%v failed=%d\n%s", err, rep.Failed(), out.String())
	}
	if !rep.Results[0].OK() || rep.Results[1].Answered {
		t.Errorf("results: %+v", rep.Results)
	}
	// The phones are asked concurrently: the total is one timeout, not two.
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("took %s; targets are not handled concurrently", el)
	}
	if !strings.Contains(out.String(), "no answer") || !strings.Contains(out.String(), "1 of 2") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestRunNoTargets(t *testing.T) {
	if _, err := Run(context.Background(), Options{}, &bytes.Buffer{}); err == nil || !errors.Is(err, ErrFailed) {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultPort(t *testing.T) {
	// A target without a port must go to 5060: check what the message says.
	msg := buildNotify(netip.MustParseAddrPort("10.0.0.5:5060"), netip.MustParseAddrPort("10.0.0.1:40000"), "c@10.0.0.1", "b", "t", false)
	if !bytes.HasPrefix(msg, []byte("NOTIFY sip:10.0.0.5:5060 SIP/2.0\r\n")) {
		t.Errorf("%q", msg)
	}
	if !bytes.HasSuffix(msg, []byte("Content-Length: 0\r\n\r\n")) {
		t.Errorf("%q", msg)
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		callID string
		status int
	}{
		{"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\nCall-ID: abc@10.0.0.1\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n", true, "abc@10.0.0.1", 200},
		{"SIP/2.0 481 Call/Transaction Does Not Exist\r\nCall-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n", true, "x", 481},
		{"SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", false, "", 0},
		{"NOTIFY sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n", false, "", 0},
		{"garbage", false, "", 0},
		{"", false, "", 0},
	}
	for _, tt := range tests {
		id, a, ok := parseAnswer([]byte(tt.in))
		if ok != tt.ok || id != tt.callID || a.status != tt.status {
			t.Errorf("parseAnswer(%q) = %q %+v %v", tt.in, id, a, ok)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nCall-ID: abc\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying\r\nCall-ID: abc\r\nCSeq: 1 NOTIFY\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, a, ok := parseAnswer(b)
		if ok && id == "" && a.status == 0 {
			t.Fatalf("accepted %q without Call-ID or status", b)
		}
		if !ok && (id != "" || a.status != 0) {
			t.Fatalf("rejected %q but returned data", b)
		}
	})
}

func ExampleResult_line() {
	r := Result{Target: Target{Addr: netip.MustParseAddrPort("10.0.0.5:5060")}, Status: 200, Reason: "OK", Sent: 1, Elapsed: 3 * time.Millisecond, Answered: true}
	fmt.Println(r.line())
	// Output: ok      10.0.0.5:5060: 200 OK (3ms, 1 sent)
}

// TestRunDoneAndConcurrency: Done hears every phone once, with its index,
// whatever the concurrency; Run's results are the same.
func TestRunDoneAndConcurrency(t *testing.T) {
	phones := make([]*fakePhone, 5)
	targets := make([]Target, len(phones))
	for i := range phones {
		phones[i] = startFakePhone(t, func(int) []int { return []int{200} })
		targets[i] = Target{Addr: phones[i].addr()}
	}
	for _, conc := range []int{1, 2, 0} {
		var mu sync.Mutex
		heard := map[int]Result{}
		rep, err := Run(context.Background(), Options{Targets: targets, Concurrency: conc, Timeout: 2 * time.Second,
			Done: func(i int, r Result) {
				mu.Lock()
				defer mu.Unlock()
				if _, dup := heard[i]; dup {
					t.Errorf("concurrency %d: Done called twice for %d", conc, i)
				}
				heard[i] = r
			}}, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("concurrency %d: %v", conc, err)
		}
		if len(heard) != len(targets) {
			t.Fatalf("concurrency %d: Done heard %d of %d", conc, len(heard), len(targets))
		}
		for i, r := range rep.Results {
			if heard[i].Target != r.Target || !heard[i].OK() {
				t.Errorf("concurrency %d: Done(%d) = %+v, result %+v", conc, i, heard[i], r)
			}
		}
	}
}

// TestRunStoppedSendsNothing: a run whose context ended sends no NOTIFY to
// the phones that had not had their turn, and says so for each.
func TestRunStoppedSendsNothing(t *testing.T) {
	p := startFakePhone(t, func(int) []int { return []int{200} })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Run(ctx, Options{Targets: []Target{{Addr: p.addr()}, {Addr: p.addr()}}}, &bytes.Buffer{})
	if err == nil || rep.Failed() != 2 {
		t.Fatalf("err=%v results=%+v", err, rep.Results)
	}
	for _, r := range rep.Results {
		if r.Sent != 0 || !strings.Contains(r.Error, "not sent") {
			t.Errorf("result %+v", r)
		}
	}
	if got := p.requests(); len(got) != 0 {
		t.Errorf("phone got %d NOTIFYs from a stopped run", len(got))
	}
}

// TestOptionsJSON: Options cross a process boundary as JSON (the e2e
// field-tool helper); the Done callback stays behind.
func TestOptionsJSON(t *testing.T) {
	b, err := json.Marshal(Options{Targets: []Target{{Addr: netip.MustParseAddrPort("10.0.0.5:5060")}}, Done: func(int, Result) {}})
	if err != nil || strings.Contains(string(b), "Done") {
		t.Fatalf("%s, %v", b, err)
	}
}
