package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/phone"
	"github.com/snomprov/snomprov/rollout"
)

func TestRolloutBox(t *testing.T) {
	canary := phone.MAC{0, 4, 0x13, 0, 0, 0xb}
	h := New(Options{Rollouts: func() []rollout.Status {
		return []rollout.Status{{
			Rollout: rollout.Rollout{Scope: "models.snomD785", Image: "snomD785-10.1.73.4-SIP-r.bin", Version: "10.1.73.4", Canaries: []phone.MAC{canary}, Timeout: time.Hour},
			State:   rollout.Held, Failed: []phone.MAC{canary},
			Reason: "held: canary 00041300000B fetched snomD785-10.1.73.4-SIP-r.bin at 2026-12-07T10:00:00Z and still reports 10.1.33.33 after canary_timeout 1h0m0s",
		}}
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `id="rollouts"`) || !strings.Contains(body, "held: canary 00041300000B") ||
		!strings.Contains(body, `0 done, 0 pending, 1 failed <a href="/phones/00041300000B">`) {
		t.Errorf("page %d:\n%s", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/rollouts", nil))
	var got []rollout.Summary
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 1 || got[0].State != "held" ||
		len(got[0].Failed) != 1 || got[0].Failed[0] != "00041300000B" || got[0].Timeout != "1h0m0s" {
		t.Errorf("api %s: %+v %v", rec.Body, got, err)
	}
	// Without rollouts there is no box, and the API says so with [].
	h = New(Options{})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if strings.Contains(rec.Body.String(), `id="rollouts"`) {
		t.Error("a box without rollouts")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/rollouts", nil))
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("api without rollouts: %s", rec.Body)
	}
}
