package probe

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// Loopback unicast only.
func pair(t *testing.T) (rx, tx *net.UDPConn) {
	t.Helper()
	var err error
	if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	if tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return rx, tx
}

func TestCollectResendsAndStops(t *testing.T) {
	rx, tx := pair(t)
	var got []string
	resends := 0
	err := Collect(context.Background(), rx, Fixed(time.Now().Add(5*time.Second)), time.Now(), func() time.Time {
		resends++
		tx.Write([]byte{byte('0' + resends)}) // the "answer" to the probe
		if resends == 2 {
			return time.Time{}
		}
		return time.Now().Add(10 * time.Millisecond)
	}, func(b []byte, _ net.Addr) bool {
		got = append(got, string(b))
		return len(got) == 2
	})
	if err != nil || resends != 2 || len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("err %v, %d resends, got %q", err, resends, got)
	}
}

// The deadline is asked again before every read, so an answer may extend it.
func TestCollectMovableDeadline(t *testing.T) {
	rx, tx := pair(t)
	deadline := time.Now().Add(50 * time.Millisecond)
	tx.Write([]byte("x"))
	n := 0
	err := Collect(context.Background(), rx, func() time.Time { return deadline }, time.Time{}, nil, func([]byte, net.Addr) bool {
		n++
		deadline = time.Now() // the answer ends the wait right away
		return false
	})
	if err != nil || n != 1 {
		t.Errorf("err %v, %d handled", err, n)
	}
}

func TestCollectContextAndErrors(t *testing.T) {
	rx, _ := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	if err := Collect(ctx, rx, Fixed(time.Now().Add(time.Minute)), time.Time{}, nil, func([]byte, net.Addr) bool { return false }); err != nil {
		t.Errorf("cancelled: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("cancel did not end the read")
	}
	bad := failing{syscall.ENETDOWN}
	if err := Collect(context.Background(), bad, Fixed(time.Now().Add(time.Minute)), time.Time{}, nil, nil); !errors.Is(err, syscall.ENETDOWN) {
		t.Errorf("read error = %v", err)
	}
}

type failing struct{ err error }

func (f failing) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, f.err }
func (f failing) SetReadDeadline(time.Time) error        { return nil }
