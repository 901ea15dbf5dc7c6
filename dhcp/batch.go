package dhcp

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// The socket side of the pipeline works in batches: a reader takes every
// datagram the kernel has queued with one recvmmsg, runs each through the
// chain, and sends the replies that are ready at once (OFFERs, NAKs) with
// one sendmmsg; the lease writer does the same with the ACKs of one group
// commit after its fsync. Under a boot storm this turns two system calls
// and a wake-up per packet into a few per batch; with one client at a time
// a batch is one packet and nothing waits for another.

// readBatch is how many datagrams one recvmmsg takes at most.
const readBatch = 64

// outMsg is one reply waiting for its batch.
type outMsg struct {
	b  []byte
	to route
}

// outbox collects replies; it belongs to one goroutine.
type outbox struct{ msgs []outMsg }

func (o *outbox) add(b []byte, to route) { o.msgs = append(o.msgs, outMsg{b, to}) }

// flushOut sends what out holds and empties it.
func (s *Server) flushOut(out *outbox) {
	if len(out.msgs) == 0 {
		return
	}
	if s.sendBatch != nil {
		if err := s.sendBatch(out.msgs); err != nil {
			s.log.Warn("sending DHCP replies failed", "replies", len(out.msgs), "err", err)
		}
	} else {
		for _, m := range out.msgs {
			if err := s.send(m.b, m.to); err != nil {
				s.log.Warn("sending DHCP reply failed", "to", m.to, "err", err)
			}
		}
	}
	clear(out.msgs)
	out.msgs = out.msgs[:0]
}

// udpBatch sends msgs with sendmmsg on the UDP socket; a reply routed to a
// MAC goes through transmit (the packet socket) on its own.
func (s *Server) udpBatch(pc *ipv4.PacketConn) func([]outMsg) error {
	return func(msgs []outMsg) error { // called by readers and the writer at once: no shared state
		var errs []error
		batch := make([]ipv4.Message, 0, len(msgs))
		for _, m := range msgs {
			if m.to.hw != nil {
				if err := s.transmit(m.b, m.to); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			batch = append(batch, ipv4.Message{Buffers: [][]byte{m.b}, Addr: net.UDPAddrFromAddrPort(m.to.to)})
		}
		for sent := 0; sent < len(batch); {
			n, err := pc.WriteBatch(batch[sent:], 0)
			if err != nil {
				errs = append(errs, err)
				n = max(n, 1) // skip the message that failed and go on with the rest
			}
			sent += n
		}
		return errors.Join(errs...)
	}
}

// readLoopBatch reads batches of datagrams until the socket fails or ctx ends.
func (s *Server) readLoopBatch(pc *ipv4.PacketConn, stop func(error) (bool, error)) error {
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
			s.handle(m.Buffers[0][:m.N], peer, &out)
		}
		s.flushOut(&out)
	}
}
