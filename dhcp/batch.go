package dhcp

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
)

// The socket side of the pipeline works in batches: a reader takes every
// datagram the kernel has queued with one recvmmsg, runs each through the
// chain, and sends the replies that are ready at once (OFFERs, NAKs) with
// one sendmmsg; the ACKs of one group commit leave after its fsync the
// same way, from the releaser (below). Under a boot storm this turns two system calls
// and a wake-up per packet into a few per batch; with one client at a time
// a batch is one packet and nothing waits for another.

// readBatch is how many datagrams one recvmmsg takes at most.
const readBatch = 64

// outMsg is one reply waiting for its batch.
type outMsg struct {
	b  []byte
	to route
}

// outbox collects encoded replies and their exchanges, which are recorded
// once the replies have left; it belongs to one goroutine at a time.
type outbox struct {
	msgs []outMsg
	exs  []*exchange
	done chan struct{} // a store barrier's, closed once the replies have left; may be nil
	sc   sendScratch
}

func (o *outbox) add(ex *exchange) {
	o.msgs = append(o.msgs, outMsg{ex.wire, ex.dst})
	o.exs = append(o.exs, ex)
}

func (o *outbox) reset() {
	clear(o.msgs)
	clear(o.exs)
	o.msgs, o.exs, o.done = o.msgs[:0], o.exs[:0], nil
}

// flushOut sends what out holds, records it and empties it.
func (s *Server) flushOut(out *outbox) {
	s.sendOut(out, out.msgs, out.exs)
	out.reset()
}

// sendOut sends msgs (one sendmmsg, or one by one through send in unit
// tests), then records exs, the exchanges they answer.
func (s *Server) sendOut(out *outbox, msgs []outMsg, exs []*exchange) {
	if len(msgs) == 0 {
		return
	}
	if s.sendBatch != nil {
		if err := s.sendBatch(&out.sc, msgs); err != nil {
			s.log.Warn("sending DHCP replies failed", "replies", len(msgs), "err", err)
		}
	} else {
		for _, m := range msgs {
			if err := s.send(m.b, m.to); err != nil {
				s.log.Warn("sending DHCP reply failed", "to", m.to, "err", err)
			}
		}
	}
	for _, ex := range exs {
		s.sent(ex)
	}
}

// ACK release. The lease writer hands the ACKs of each group commit,
// encoded, to the releaser goroutine and goes on with the next group's
// write and fsync. A group is what arrived while the previous one was
// being written: a few requests normally, hundreds after a slow fsync.
// Sent in one sendmmsg, such a group reaches a receiver faster than it
// reads: a relay agent, or perfdhcp, whose receive buffer holds about a
// hundred replies, loses the rest. So the releaser sends a large group in
// chunks of ackChunk, spread over the time its REQUESTs took to arrive
// (at most maxAckSpread), the pace at which the receiver sent them; when
// the next group is already waiting it stops pausing. No ACK leaves before
// its lease is fsynced: the writer hands a group on only after its fsync.
const (
	ackChunk     = 32
	maxAckSpread = 20 * time.Millisecond
	ackGroups    = 8 // groups in flight between writer and releaser; then the writer waits
)

// startReleaser starts the goroutine that sends the writer's ACKs.
func (s *Server) startReleaser() {
	s.acks = make(chan *outbox, ackGroups)
	s.freeOut = make(chan *outbox, ackGroups+2)
	s.released = make(chan struct{})
	go func() {
		defer close(s.released)
		for out := range s.acks {
			s.releasePaced(out)
			if out.done != nil {
				close(out.done)
			}
			out.reset()
			select {
			case s.freeOut <- out:
			default:
			}
		}
	}()
}

// handOff runs on the writer after each group commit: its ACKs go to the
// releaser (done: see store.batchDone).
func (s *Server) handOff(done chan struct{}) {
	out := s.writerOut
	if len(out.msgs) == 0 && done == nil {
		return
	}
	out.done = done
	select {
	case s.writerOut = <-s.freeOut:
	default:
		s.writerOut = &outbox{}
	}
	s.acks <- out
}

// stopReleaser runs on the writer when it stops, after its last hand-off:
// it returns once every ACK has left.
func (s *Server) stopReleaser() {
	close(s.acks)
	<-s.released
}

func (s *Server) releasePaced(out *outbox) {
	n := len(out.msgs)
	if n <= ackChunk {
		s.sendOut(out, out.msgs, out.exs)
		return
	}
	window := min(max(out.exs[n-1].now.Sub(out.exs[0].now), 0), maxAckSpread)
	start := time.Now()
	for i := 0; i < n; i += ackChunk {
		j := min(i+ackChunk, n)
		s.sendOut(out, out.msgs[i:j], out.exs[i:j])
		if j < n && len(s.acks) == 0 {
			if d := time.Until(start.Add(window * time.Duration(j) / time.Duration(n))); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// sendScratch is what one sendmmsg needs, kept by the goroutine that sends
// (in its outbox) so that sending a batch allocates nothing.
type sendScratch struct {
	msgs  []ipv4.Message
	bufs  [][]byte // msgs[i].Buffers is bufs[i : i+1]
	addrs []net.UDPAddr
	ips   [][4]byte // addrs[i].IP is ips[i][:]
}

// udpBatch sends msgs with sendmmsg on the UDP socket of each one's link;
// a reply routed to a MAC goes through transmit (the packet socket) on its
// own. Readers and the releaser call it at once, each with its scratch.
func (s *Server) udpBatch(sc *sendScratch, msgs []outMsg) error {
	var errs []error
	if cap(sc.msgs) < len(msgs) {
		*sc = sendScratch{msgs: make([]ipv4.Message, len(msgs)), bufs: make([][]byte, len(msgs)),
			addrs: make([]net.UDPAddr, len(msgs)), ips: make([][4]byte, len(msgs))}
	}
	for _, l := range s.links {
		batch := sc.msgs[:0]
		for _, m := range msgs {
			if s.linkOf(m.to) != l {
				continue
			}
			if m.to.hw != nil {
				if err := s.transmit(m.b, m.to); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			i := len(batch)
			sc.bufs[i], sc.ips[i] = m.b, m.to.to.Addr().As4()
			sc.addrs[i] = net.UDPAddr{IP: sc.ips[i][:], Port: int(m.to.to.Port())}
			batch = append(batch, ipv4.Message{Buffers: sc.bufs[i : i+1], Addr: &sc.addrs[i]})
		}
		for sent := 0; sent < len(batch); {
			n, err := l.pc.WriteBatch(batch[sent:], 0)
			if err != nil {
				errs = append(errs, err)
				n = max(n, 1) // skip the message that failed and go on with the rest
			}
			sent += n
		}
		clear(sc.bufs[:len(batch)]) // the replies' bytes are not kept
	}
	return errors.Join(errs...)
}

// readLoopBatch reads batches of datagrams from l until the socket fails
// or ctx ends.
func (s *Server) readLoopBatch(l *link, stop func(error) (bool, error)) error {
	pc := l.pc
	msgs := make([]ipv4.Message, readBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	var out outbox
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if done, err := stop(err); done {
				return err
			}
			continue
		}
		for i := 0; i < n; i++ {
			m := &msgs[i]
			peer := netip.AddrPort{}
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				peer = ua.AddrPort()
			}
			// dhcpv4.FromBytes copies what it keeps, so the buffer is
			// read again by the next recvmmsg.
			s.handle(m.Buffers[0][:m.N], peer, l, &out)
		}
		s.flushOut(&out)
	}
}
