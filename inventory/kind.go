package inventory

import (
	"fmt"
	"strconv"
)

// Kind is an event's short, machine-readable outcome, a metrics label: the
// DHCP message type, the PnP outcome, or the HTTP status code.
type Kind string

// DHCP kinds: the message type the server sent or received.
const (
	KindDiscover Kind = "DISCOVER"
	KindOffer    Kind = "OFFER"
	KindRequest  Kind = "REQUEST"
	KindAck      Kind = "ACK"
	KindNak      Kind = "NAK"
	KindRelease  Kind = "RELEASE"
	KindDecline  Kind = "DECLINE"
	KindInform   Kind = "INFORM"
)

// PnP kinds: what became of a SUBSCRIBE and its NOTIFY.
const (
	KindSubscribe      Kind = "SUBSCRIBE"       // answered, NOTIFY sent
	KindIgnored        Kind = "IGNORED"         // seen, not answered ([pnp] answer)
	KindNotifyFailed   Kind = "NOTIFY-FAILED"   // the 200 OK could not be sent
	KindNotifyAcked    Kind = "NOTIFY-ACKED"    // the phone answered the NOTIFY 200
	KindNotifyRejected Kind = "NOTIFY-REJECTED" // the phone answered the NOTIFY with an error
	KindNotifyTimeout  Kind = "NOTIFY-TIMEOUT"  // no answer to the NOTIFY
)

// Action kinds: what an installer did (StepAction events).
const (
	KindResync      Kind = "RESYNC"       // check-sync NOTIFY: re-read settings, reboot only if needed
	KindReboot      Kind = "REBOOT"       // check-sync;reboot=true NOTIFY: re-read settings and reboot
	KindLoopCleared Kind = "LOOP-CLEARED" // the firmware loop guard released the phone
)

// Kinds lists the DHCP, PnP and action kinds; HTTP kinds are status codes.
var Kinds = []Kind{
	KindDiscover, KindOffer, KindRequest, KindAck, KindNak, KindRelease, KindDecline, KindInform,
	KindSubscribe, KindIgnored, KindNotifyFailed, KindNotifyAcked, KindNotifyRejected, KindNotifyTimeout,
	KindResync, KindReboot, KindLoopCleared,
}

// httpKinds holds the status codes as kinds, so HTTPKind does not allocate
// on the request path.
var httpKinds = func() [600]Kind {
	var k [600]Kind
	for c := 100; c < len(k); c++ {
		k[c] = Kind(strconv.Itoa(c))
	}
	return k
}()

// HTTPKind is the kind of an HTTP answer with this status code.
func HTTPKind(status int) Kind {
	if status >= 100 && status < len(httpKinds) {
		return httpKinds[status]
	}
	return Kind(strconv.Itoa(status))
}

// ParseKind reads a kind back from text: one of Kinds, an HTTP status code,
// or empty (an event that names none).
func ParseKind(text string) (Kind, error) {
	k := Kind(text)
	if text == "" {
		return k, nil
	}
	for _, known := range Kinds {
		if k == known {
			return k, nil
		}
	}
	if c, err := strconv.Atoi(text); err == nil && c >= 100 && c < 600 && len(text) == 3 {
		return k, nil
	}
	return "", fmt.Errorf("unknown event kind %q", text)
}

// UnmarshalText accepts what ParseKind does.
func (k *Kind) UnmarshalText(text []byte) error {
	v, err := ParseKind(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
