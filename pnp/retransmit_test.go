package pnp

import (
	"errors"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/snomprov/snomprov/inventory"
)

// retransmit resends a pending NOTIFY with a doubled interval up to T2 and
// records a timeout at the deadline; the phone's answer ends it.
func TestRetransmitTimerE(t *testing.T) {
	c := &fakeConn{}
	rec := newRecorder()
	s, err := New(Options{Answer: AnswerAll}, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	s.notify = c
	dst := netip.MustParseAddrPort("10.0.0.9:5060")
	newPending := func(branch string, deadline time.Duration) *pendingNotify {
		p := &pendingNotify{branch: branch, msg: []byte("NOTIFY " + branch), dst: dst,
			obs: inventory.Observation{MAC: mustMAC("000413000001")}, start: time.Now(), interval: timerT1, deadline: time.Now().Add(deadline)}
		p.timer = time.NewTimer(time.Hour) // retransmit only Resets it
		s.pending[branch] = p
		return p
	}
	last := func() string {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.sent) == 0 {
			return ""
		}
		return string(c.sent[len(c.sent)-1])
	}

	p := newPending("z9hG4bKone", time.Minute)
	s.retransmit(p)
	if got := last(); got != "NOTIFY z9hG4bKone" {
		t.Fatalf("retransmission = %q", got)
	}
	if p.interval != 2*timerT1 {
		t.Errorf("interval = %s, want %s", p.interval, 2*timerT1)
	}
	for i := 0; i < 5; i++ {
		s.retransmit(p)
	}
	if p.interval != timerT2 {
		t.Errorf("interval = %s, want capped at T2 %s", p.interval, timerT2)
	}

	late := newPending("z9hG4bKlate", -time.Millisecond)
	s.retransmit(late)
	if _, still := s.pending["z9hG4bKlate"]; still {
		t.Error("a NOTIFY past its deadline is still pending")
	}
	if o, ok := rec.find(late.obs.MAC, "NOTIFY-TIMEOUT"); !ok || o.Event.OK {
		t.Errorf("no NOTIFY-TIMEOUT recorded: %+v", rec.obs)
	}

	s.onResponse(response(t, 200, "OK", "z9hG4bKone"))
	if _, still := s.pending["z9hG4bKone"]; still {
		t.Error("acknowledged NOTIFY still pending")
	}
	if _, ok := rec.find(p.obs.MAC, "NOTIFY-ACKED"); !ok {
		t.Error("no NOTIFY-ACKED recorded")
	}
	busy := newPending("z9hG4bKbusy", time.Minute)
	s.onResponse(response(t, 180, "Ringing", "z9hG4bKbusy"))
	if _, still := s.pending["z9hG4bKbusy"]; !still {
		t.Error("a provisional answer ended the NOTIFY")
	}
	s.onResponse(response(t, 486, "Busy Here", "z9hG4bKbusy"))
	if o, ok := rec.find(busy.obs.MAC, "NOTIFY-REJECTED"); !ok || o.Event.Detail != "phone answered the NOTIFY with 486 Busy Here" {
		t.Errorf("rejection = %+v", o)
	}
}

// response is the phone's answer to our NOTIFY, as sipgo parses it.
func response(t *testing.T, code int, reason, branch string) *sip.Response {
	t.Helper()
	raw := "SIP/2.0 " + strconv.Itoa(code) + " " + reason + "\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=" + branch +
		"\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 NOTIFY\r\nContent-Length: 0\r\n\r\n"
	msg, err := testParser.ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.(*sip.Response)
}

// Past MaxPending, a new phone still gets its 200 and one NOTIFY, but no
// retransmissions and no pending state; it is counted as shed.
func TestMaxPendingSheds(t *testing.T) {
	c := &fakeConn{}
	rec := newRecorder()
	s, err := New(Options{Answer: AnswerAll, MaxPending: 3}, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	s.recv, s.notify, s.fallback = c, c, netip.MustParseAddr("10.77.0.1")
	defer func() {
		s.pmu.Lock()
		for _, p := range s.pending {
			p.timer.Stop()
		}
		s.pmu.Unlock()
	}()
	src := netip.MustParseAddrPort("10.77.0.9:5060")
	for i := 0; i < 5; i++ {
		mac := "000413B0000" + strconv.Itoa(i)
		tr := traces[2].WithStartLine("SUBSCRIBE sip:MAC%3a"+mac+"@224.0.1.75 SIP/2.0").WithHeader("Call-ID", "shed-"+mac)
		s.onDatagram(tr.Build("10.77.0.9"), src, arrival{}, false)
	}
	if got := len(s.pending); got != 3 {
		t.Errorf("%d NOTIFYs pending, want the cap 3", got)
	}
	if got := s.Shed(); got != 2 {
		t.Errorf("Shed = %d, want 2", got)
	}
	if got := len(c.sent); got != 10 {
		t.Errorf("%d datagrams sent, want a 200 and a NOTIFY for each of 5 phones", got)
	}
	o, ok := rec.find(mustMAC("000413B00004"), "SUBSCRIBE")
	if !ok || !o.Event.OK || o.Event.Detail != "NOTIFY sent once, without retransmissions (3 NOTIFYs already waiting for their phones), url=http://10.77.0.1/" {
		t.Errorf("shed SUBSCRIBE event = %+v", o)
	}
}

// A read error on the socket stops Serve with that error, not nil, and
// before its context ends.
func TestServeStopsOnSocketError(t *testing.T) {
	s, err := New(Options{Answer: AnswerAll}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeConn{err: syscall.ENOBUFS}
	s.recv, s.notify = c, c
	done := make(chan error, 1)
	go func() { done <- s.Serve(t.Context()) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ENOBUFS) {
			t.Errorf("Serve = %v, want the socket's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still running after its socket failed")
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{every: time.Second}
	now := time.Unix(1000, 0)
	if ok, n := l.allow(now); !ok || n != 0 {
		t.Fatalf("first = %v %d", ok, n)
	}
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(now.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatal("let through within the interval")
		}
	}
	if ok, n := l.allow(now.Add(time.Second)); !ok || n != 3 {
		t.Errorf("after the interval = %v %d, want true 3", ok, n)
	}
}
