package pnp

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/snomprov/snomprov/inventory"
)

// retransmit resends a pending NOTIFY with a doubled interval, skips the copy
// while too many NOTIFYs are unanswered, and records a timeout at the
// deadline. Loopback unicast only.
func TestRetransmitTimerEAndOverload(t *testing.T) {
	phoneConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer phoneConn.Close()
	srvConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srvConn.Close()
	rec := newRecorder()
	s, err := New(Options{Answer: AnswerAll}, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	s.notifyConn = srvConn
	dst := phoneConn.LocalAddr().(*net.UDPAddr).AddrPort()
	newPending := func(branch string, deadline time.Duration) *pendingNotify {
		p := &pendingNotify{branch: branch, msg: []byte("NOTIFY " + branch), dst: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()),
			obs: inventory.Observation{MAC: mustMAC("000413000001")}, start: time.Now(), interval: timerT1, deadline: time.Now().Add(deadline)}
		p.timer = time.NewTimer(time.Hour) // retransmit only Resets it
		s.pending[branch] = p
		return p
	}
	read := func() string {
		buf := make([]byte, 100)
		phoneConn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := phoneConn.ReadFrom(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}

	p := newPending("z9hG4bKone", time.Minute)
	s.retransmit(p)
	if got := read(); got != "NOTIFY z9hG4bKone" {
		t.Fatalf("retransmission = %q", got)
	}
	if p.interval != 2*timerT1 {
		t.Errorf("interval = %s, want %s", p.interval, 2*timerT1)
	}
	for i := 0; i < 5; i++ {
		s.retransmit(p)
		read()
	}
	if p.interval != timerT2 {
		t.Errorf("interval = %s, want capped at T2 %s", p.interval, timerT2)
	}

	for i := 0; i < maxRetransmitting; i++ {
		newPending("z9hG4bKfill"+strconv.Itoa(i), time.Minute)
	}
	s.retransmit(p)
	if got := read(); got != "" {
		t.Errorf("sent %q while %d NOTIFYs were unanswered", got, len(s.pending))
	}
	if s.skipped.Load() != 1 {
		t.Errorf("skipped = %d", s.skipped.Load())
	}

	late := newPending("z9hG4bKlate", -time.Millisecond)
	s.retransmit(late)
	if _, still := s.pending["z9hG4bKlate"]; still {
		t.Error("a NOTIFY past its deadline is still pending")
	}
	if o, ok := rec.find(late.obs.MAC, "NOTIFY-TIMEOUT"); !ok || o.Event.OK {
		t.Errorf("no NOTIFY-TIMEOUT recorded: %+v", rec.obs)
	}

	s.onResponse(response{code: 200, branch: "z9hG4bKone", method: "NOTIFY"})
	if _, still := s.pending["z9hG4bKone"]; still {
		t.Error("acknowledged NOTIFY still pending")
	}
	if _, ok := rec.find(p.obs.MAC, "NOTIFY-ACKED"); !ok {
		t.Error("no NOTIFY-ACKED recorded")
	}
	s.onResponse(response{code: 486, reason: "Busy Here", branch: "z9hG4bKfill0", method: "NOTIFY"})
	if o, ok := rec.find(p.obs.MAC, "NOTIFY-REJECTED"); !ok || o.Event.Detail != "phone answered the NOTIFY with 486 Busy Here" {
		t.Errorf("rejection = %+v", o)
	}
}
