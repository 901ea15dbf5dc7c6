package status

import (
	"net/http"

	"github.com/snomprov/snomprov/phone"
)

// rolloutJSON is one staged rollout in /api/rollouts and the page's box.
type rolloutJSON struct {
	Scope   string   `json:"scope"` // models.snomD785, groups.sales
	Image   string   `json:"image"`
	Version string   `json:"version"`
	State   string   `json:"state"` // waiting | held | done
	Reason  string   `json:"reason,omitempty"`
	Done    []string `json:"canaries_done"`
	Pending []string `json:"canaries_pending"`
	Failed  []string `json:"canaries_failed"`
	Timeout string   `json:"canary_timeout"`
}

func rolloutsView(o *Options) []rolloutJSON {
	if o.Rollouts == nil {
		return nil
	}
	sts := o.Rollouts()
	out := make([]rolloutJSON, len(sts))
	for i, st := range sts {
		out[i] = rolloutJSON{Scope: st.Scope, Image: phone.ImageName(st.Image), Version: st.Version, State: string(st.State),
			Reason: st.Reason, Done: macs(st.Done), Pending: macs(st.Pending), Failed: macs(st.Failed), Timeout: st.Timeout.String()}
	}
	return out
}

func macs(list []phone.MAC) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.String()
	}
	return out
}

// apiRollouts is GET /api/rollouts: every staged rollout, where it stands.
func (h *Handler) apiRollouts(w http.ResponseWriter, r *http.Request) {
	out := rolloutsView(h.opts.Load())
	if out == nil {
		out = []rolloutJSON{}
	}
	writeJSON(w, http.StatusOK, out)
}
