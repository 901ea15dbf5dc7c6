package pnp

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLANExchanges measures complete SUBSCRIBE → 200 → NOTIFY → 200
// exchanges per second through the responder on a simulated LAN, with one
// fake phone socket keeping up to 256 exchanges in flight (like sipp with
// many calls on one socket). Run with -cpuprofile to see where time goes;
// bench/pnp.sh is the end-to-end figure with the real binary and sipp.
func BenchmarkLANExchanges(b *testing.B) {
	n := newLAN(b)
	n.start(b, Options{Answer: AnswerAll})
	p := n.phone(b)
	ip := p.ip.String()
	var done atomic.Int64
	window := make(chan struct{}, 256)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			p.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			k, _, err := p.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				select {
				case <-stop:
					return
				default:
					continue
				}
			}
			m := parseMsg(buf[:k], netip.AddrPort{})
			if strings.HasPrefix(m.start, "NOTIFY ") {
				via := m.get("Via")
				hostport := strings.Fields(strings.SplitN(via, ";", 2)[0])[1]
				res := "SIP/2.0 200 OK\r\nVia: " + via + "\r\nFrom: " + m.get("From") + "\r\nTo: " + m.get("To") +
					"\r\nCall-ID: " + m.get("Call-ID") + "\r\nCSeq: " + m.get("CSeq") + "\r\nContent-Length: 0\r\n\r\n"
				p.conn.WriteToUDPAddrPort([]byte(res), netip.MustParseAddrPort(hostport))
				done.Add(1)
				select {
				case <-window:
				default:
				}
			}
		}
	}()
	tmpl := traces[7] // the sipp-style SUBSCRIBE
	b.ResetTimer()
	start := time.Now()
	var stalls int
	for i := 0; i < b.N; i++ {
		select {
		case window <- struct{}{}:
		case <-time.After(time.Second):
			stalls++ // an exchange was lost; carry on without its slot
			if stalls > 20 {
				b.Fatalf("more than 20 exchanges lost after %d sent, %d done", i, done.Load())
			}
		}
		mac := fmt.Sprintf("000413%06X", i%4000)
		raw := tmpl.WithStartLine("SUBSCRIBE sip:MAC%3a"+mac+"@224.0.1.75 SIP/2.0").
			WithHeader("Call-ID", fmt.Sprintf("bench-%d@%s", i, ip)).
			WithHeader("Via", fmt.Sprintf("SIP/2.0/UDP %s:5060;rport;branch=z9hG4bK-bench-%d", ip, i)).Build(ip)
		p.conn.WriteTo(raw, groupAddr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for done.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	close(stop)
	el := time.Since(start)
	b.ReportMetric(float64(done.Load())/el.Seconds(), "exchanges/s")
	if done.Load() < int64(b.N) {
		b.Logf("only %d of %d exchanges completed", done.Load(), b.N)
	}
}
