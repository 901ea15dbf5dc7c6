package pnp

import (
	"fmt"
	"strings"

	"github.com/snomprov/snomprov/internal/field"
)

// Prepare fills defaults and checks the options: it is the only place the
// responder's rules live. Errors are field.Errors keyed like [pnp].
// Whether the interfaces exist on this machine is Bind's (and the
// compile's) question, not a rule of the options.
func Prepare(o Options) (*Prepared, error) {
	o = o.withDefaults()
	var errs field.Errors
	if !validPolicy(o.Answer) {
		errs.Add("answer", "%q is not allowed; use one of %q, %q, %q or %q", o.Answer, AnswerSnom, AnswerConfigured, AnswerAll, AnswerNone)
	}
	if o.Port < 1 || o.Port > 65535 {
		errs.Add("port", "%d is out of range 1-65535", o.Port)
	}
	for i, name := range o.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t") {
			errs.Add(fmt.Sprintf("interfaces[%d]", i), "%q is not a network interface name; use a name from `ip link`, like \"eth0\"", name)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &Prepared{o: o}, nil
}

// Prepared is a checked Options with its defaults filled in.
type Prepared struct{ o Options }

// Options returns the prepared options.
func (p *Prepared) Options() Options { return p.o }
