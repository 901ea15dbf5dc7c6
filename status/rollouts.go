package status

import (
	"net/http"

	"github.com/snomprov/snomprov/rollout"
)

func rolloutsView(o *Options) []rollout.Summary {
	if o.Rollouts == nil {
		return nil
	}
	sts := o.Rollouts()
	out := make([]rollout.Summary, len(sts))
	for i, st := range sts {
		out[i] = st.Summary()
	}
	return out
}

// apiRollouts is GET /api/rollouts: every staged rollout, where it stands.
func (h *Handler) apiRollouts(w http.ResponseWriter, r *http.Request) {
	out := rolloutsView(h.opts.Load())
	if out == nil {
		out = []rollout.Summary{}
	}
	writeJSON(w, http.StatusOK, out)
}
