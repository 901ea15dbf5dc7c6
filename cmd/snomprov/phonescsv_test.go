package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// TestPhonesCSVRoundTrip: `phones --csv` lists the phones seen that the
// config does not, and the file, once its lines are filled in and named
// in phones_csv, reads back as those phones.
func TestPhonesCSVRoundTrip(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Open(inventory.Path(state), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seen := []string{"000413A11FA7", "000413000002"}
	for _, m := range seen {
		mac, _ := phone.ParseMAC(m)
		inv.Record(inventory.Observation{MAC: mac, Model: "snomD785", Firmware: "10.1.73.4", IP: netip.MustParseAddr("10.0.0.50"),
			Event: inventory.Event{Step: inventory.StepPnP, Kind: "SUBSCRIBE", OK: true}})
	}
	if err := inv.Flush(); err != nil {
		t.Fatal(err)
	}
	cfgText := "[server]\nstate_dir = \"" + state + "\"\n[lines]\nhost = \"pbx\"\n[[phones]]\nmac = \"000413A11FA7\"\n"
	p := writeFile(t, dir, "snomprov.toml", cfgText)
	code, out, errOut := run(t, "phones", "-config", p, "--csv")
	if code != exitOK {
		t.Fatalf("phones --csv: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "mac,model,description,line1_account,line1_password,line1_name,ip,firmware_seen,state,last_seen" ||
		!strings.HasPrefix(lines[1], "00:04:13:00:00:02,snomD785,,,,,10.0.0.50,10.1.73.4,pnp-answered,") {
		t.Fatalf("phones --csv wrote:\n%s", out)
	}
	filled := lines[0] + "\n" + strings.Replace(lines[1], ",,,,,", ",Lab,102,pw,Lab phone,", 1) + "\n"
	writeFile(t, dir, "phones.csv", filled)
	p = writeFile(t, dir, "snomprov.toml", "phones_csv = [\"phones.csv\"]\n"+cfgText)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := phone.ParseMAC("000413000002")
	ph, ok := cfg.Phone(mac)
	if !ok || ph.Description != "Lab" || ph.Model != "snomD785" || len(ph.Lines) != 1 || ph.Lines[0].Account != "102" || ph.Lines[0].Name != "Lab phone" || len(ph.Settings) != 0 {
		t.Fatalf("read back: %+v", ph)
	}
	if code, out, _ := run(t, "phones", "-config", p, "--csv"); code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("with every seen phone configured, phones --csv wrote more than the header:\n%s", out)
	}
}
