package simulate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// newTestRun is a phoneRun against settingURL, printing nowhere.
func newTestRun(settingURL string) (*phoneRun, Identity) {
	mac, _ := phone.ParseMAC("000413AA0001")
	id := Identity{MAC: mac, Model: "snomD715", Firmware: DefaultFirmware}
	r := &phoneRun{ctx: context.Background(), o: Options{Timeout: 5 * time.Second}, out: &printer{w: io.Discard}, rep: PhoneReport{Phone: id, SettingURL: settingURL}}
	return r, id
}

// A 401 is the credentials' fault, never "the server does not know this
// phone" (issue 11).
func TestSettingsNames401(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "prov" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="snomprov"`)
			http.Error(w, "credentials needed", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `<settings><phone-settings><language perm="R">English</language></phone-settings></settings>`)
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name, url string
		ok        bool
	}{
		{"no credentials", srv.URL + "/", false},
		{"wrong credentials", strings.Replace(srv.URL, "http://", "http://prov:nope@", 1) + "/", false},
		{"credentials in the URL", strings.Replace(srv.URL, "http://", "http://prov:pw@", 1) + "/", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, id := newTestRun(tt.url)
			got := r.settings(NewFetcher(id, netip.Addr{}, 5*time.Second), id)
			if tt.ok {
				if len(got) == 0 {
					t.Fatalf("no settings: %+v", r.rep.Steps)
				}
				return
			}
			st, bad := r.rep.FirstFailure()
			if got != nil || !bad || !strings.Contains(st.Detail, "HTTP credentials") || strings.Contains(st.Detail, "does not know this phone") {
				t.Errorf("failure %+v; want one naming the credentials", st)
			}
		})
	}
}

// A type with no firmware configured: both fallback firmware files are
// 404, the phone keeps its firmware, and it is provisioned (issue 11).
func TestFirmwareNotConfiguredIsNoFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	r, id := newTestRun(srv.URL + "/")
	r.firmware(NewFetcher(id, netip.Addr{}, 5*time.Second), id, []SettingsFile{{Root: "settings"}})
	if !r.rep.OK() {
		t.Fatalf("a phone without firmware to push failed: %+v", r.rep.Steps)
	}
	last := r.rep.Steps[len(r.rep.Steps)-1]
	if last.Status != Skipped || !strings.Contains(last.Detail, "[models.snomD715] firmware") {
		t.Errorf("last step %+v; want skipped naming [models.snomD715] firmware", last)
	}
	// A firmware_status the server does not serve is a failure, as before.
	r, id = newTestRun(srv.URL + "/")
	r.firmware(NewFetcher(id, netip.Addr{}, 5*time.Second), id, []SettingsFile{{Root: "settings", FirmwareStatus: srv.URL + "/fw.htm"}})
	if r.rep.OK() {
		t.Errorf("a firmware_status that 404s passed: %+v", r.rep.Steps)
	}
}
