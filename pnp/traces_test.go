package pnp

import "github.com/snomprov/snomprov/internal/pnptraces"

// The documented SUBSCRIBEs, shared with test/e2e.
type trace = pnptraces.Trace

var traces = pnptraces.Documented
