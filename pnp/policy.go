package pnp

import (
	"fmt"

	"github.com/snomprov/snomprov/phone"
)

// Answer policies, the values of Options.Answer.
const (
	AnswerSnom       = "snom"       // Snom OUI or vendor="snom"
	AnswerConfigured = "configured" // MACs for which Options.Configured says yes
	AnswerAll        = "all"
	AnswerNone       = "none" // record only
)

// Decision is what the responder does with a PnP SUBSCRIBE.
type Decision int

// The decisions. Not-PnP traffic never reaches decide: it is dropped earlier.
const (
	// RecordOnly: no reply at all (another PnP server may answer), but the
	// phone goes into the inventory as seen.
	RecordOnly Decision = iota
	// Answer: 200 OK, then a NOTIFY with the setting server URL.
	Answer
)

func (d Decision) String() string {
	if d == Answer {
		return "answer"
	}
	return "record-only"
}

// decide applies the answer policy. The reason is for the inventory and logs.
func decide(s Subscribe, policy string, configured func(phone.MAC) bool) (Decision, string) {
	switch policy {
	case AnswerAll:
		return Answer, "answer=all"
	case AnswerSnom, "":
		if s.IsSnom() {
			return Answer, "answer=snom"
		}
		return RecordOnly, fmt.Sprintf("answer=snom and %s is neither a Snom OUI nor vendor=\"snom\" (vendor=%q)", s.MAC, s.Vendor)
	case AnswerConfigured:
		if configured != nil && configured(s.MAC) {
			return Answer, "answer=configured"
		}
		return RecordOnly, fmt.Sprintf("answer=configured and %s is not in [[phones]]", s.MAC)
	default: // AnswerNone; New rejects anything else
		return RecordOnly, "answer=none"
	}
}

func validPolicy(p string) bool {
	switch p {
	case AnswerSnom, AnswerConfigured, AnswerAll, AnswerNone:
		return true
	}
	return false
}
