// Package probe is the receiving half of a broadcast or multicast probe
// (doctor's and dhcp's look for other DHCP servers, simulate's PnP
// SUBSCRIBE): read the answers from the socket until a deadline or the
// context ends, resending the probe on a schedule in between.
package probe

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// Conn is the socket the answers arrive on; *net.UDPConn is one.
type Conn interface {
	ReadFrom(b []byte) (int, net.Addr, error)
	SetReadDeadline(t time.Time) error
}

// Collect reads datagrams from c and hands each to handle (which must not
// keep b) until handle returns true, deadline() has passed or ctx ends.
// deadline is asked again before every read, so handle may move it.
// resendAt is when to call resend first (zero: never); resend sends the
// probe again and returns when to call it next (zero: no more). A read error
// other than a timeout ends Collect with that error; the others end it with
// nil.
func Collect(ctx context.Context, c Conn, deadline func() time.Time, resendAt time.Time, resend func() time.Time,
	handle func(b []byte, from net.Addr) (stop bool)) error {
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 65535)
	for ctx.Err() == nil {
		now, until := time.Now(), deadline()
		if !now.Before(until) {
			return nil
		}
		if !resendAt.IsZero() && !now.Before(resendAt) {
			resendAt = resend()
			continue
		}
		if !resendAt.IsZero() && resendAt.Before(until) {
			until = resendAt
		}
		_ = c.SetReadDeadline(until)
		if ctx.Err() != nil { // cancelled between the check and the deadline
			return nil
		}
		n, from, err := c.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if handle(buf[:n], from) {
			return nil
		}
	}
	return nil
}

// Fixed is a deadline that does not move, for Collect.
func Fixed(t time.Time) func() time.Time { return func() time.Time { return t } }
