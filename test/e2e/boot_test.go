package e2e

// The whole appliance, as a newcomer would see it: the real binary runs
// DHCP, PnP and HTTP in the server namespace of a simulated LAN, and each
// phone namespace boots a simulated Snom phone with the real binary's
// `simulate` command (DHCP with a Snom vendor class → PnP SUBSCRIBE →
// settings files with a Snom User-Agent → firmware file and image). Every
// phone's complete path must then show in `snomprov phones`.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/simulate"
)

// lanServer begins the config of an appliance on a simulated LAN's eth0
// serving plain HTTP on port 80 (the snomD785, which carries SIP
// passwords, an explicit cleartext exception) with its state in stateDir,
// its [http] section open for more keys.
func lanServer(stateDir string) string {
	return fmt.Sprintf(`[server]
interface = "eth0"
state_dir = %q
[http]
listen = ":80"
https_listen = ""
cleartext_models = ["snomD785"]
`, stateDir)
}

func TestFullBoot(t *testing.T) {
	bin := binary(t)
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.77.0.1/24", MAC: "02:77:ff:00:00:01"})
	const phones = 3
	var clients []*lantest.Host
	for i := 1; i <= phones; i++ {
		clients = append(clients, l.AddHost(fmt.Sprintf("ph%d", i), lantest.HostOptions{
			Addr: fmt.Sprintf("10.77.0.%d/24", 10+i), MAC: fmt.Sprintf("02:77:00:00:00:%02x", i),
		}))
	}

	dir := t.TempDir()
	fw := filepath.Join(dir, "fw")
	if err := os.MkdirAll(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	image := strings.Repeat("snom firmware image ", 1000)
	if err := os.WriteFile(filepath.Join(fw, "snomD785-10.1.73.4-SIP-r.bin"), []byte(image), 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString(lanServer(filepath.Join(dir, "state")))
	fmt.Fprintf(&cfg, `firmware_dir = %q
[pnp]
answer = "snom"
[dhcp]
enabled = true
pool = "10.77.0.100-10.77.0.199"
router = "10.77.0.1"
lease_time = "1h"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
`, fw)
	macs := make([]string, phones)
	for i := range macs {
		macs[i] = fmt.Sprintf("000413B0000%d", i+1)
		fmt.Fprintf(&cfg, "[[phones]]\nmac = %q\nmodel = \"snomD785\"\n[phones.settings]\nuser_name = { 1 = \"10%d\" }\nuser_pass = { 1 = \"secret%d\" }\n", macs[i], i+1, i+1)
	}
	conf := writeConfig(t, cfg.String())
	proc := srv.Start(bin, "serve", "-config", conf)
	if err := proc.WaitOutput("msg=ready", 15*time.Second); err != nil {
		t.Fatalf("server not ready: %v\n%s", err, proc.Output())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	outs := make([]string, phones)
	errs := make([]error, phones)
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *lantest.Host) {
			defer wg.Done()
			args := []string{"simulate", "-interface", "eth0", "--mac", macs[i], "--model", "snomD785", "--timeout", "10s"}
			if i == 0 {
				args = append(args, "--json") // what bench/boot.sh reads
			}
			outs[i], errs[i] = c.Run(ctx, bin, args...)
		}(i, c)
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil {
			t.Errorf("phone %s: simulate failed: %v\n%s", macs[i], errs[i], outs[i])
		}
	}
	if t.Failed() {
		t.Fatalf("server log:\n%s", proc.Output())
	}
	var rep simulate.Report
	if err := json.Unmarshal([]byte(outs[0]), &rep); err != nil || len(rep.Phones) != 1 || !rep.Phones[0].OK() {
		t.Errorf("simulate --json: %v, %+v\n%s", err, rep, outs[0])
	} else {
		took := map[string]time.Duration{}
		for _, s := range rep.Phones[0].Steps {
			took[s.Name] += s.Duration
		}
		if took["dhcp"] <= 0 || took["settings"] <= 0 || took["firmware-image"] <= 0 {
			t.Errorf("simulate --json: step durations %v, want dhcp, settings and firmware-image timed", took)
		}
	}

	// The inventory is flushed every 2 s; stop the server so it flushes now.
	proc.Stop()
	out, err := srv.Run(ctx, bin, "phones", "-config", conf, "--json")
	if err != nil {
		t.Fatalf("phones: %v\n%s", err, out)
	}
	var list []struct {
		MAC   string                     `json:"mac"`
		Model string                     `json:"model"`
		State string                     `json:"state"`
		Steps map[string]json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("phones --json: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, p := range list {
		seen[p.MAC] = true
		for _, step := range []string{"dhcp", "pnp", "general", "phone", "firmware-file", "firmware-image"} {
			if _, ok := p.Steps[step]; !ok {
				t.Errorf("phone %s: no %s step in the inventory: %s", p.MAC, step, out)
			}
		}
		if p.State != "up-to-date" || p.Model != "snomD785" {
			t.Errorf("phone %s: state %q model %q, want up-to-date snomD785", p.MAC, p.State, p.Model)
		}
	}
	for _, m := range macs {
		if !seen[m] {
			t.Errorf("phone %s missing from the inventory:\n%s", m, out)
		}
	}
	leases, err := srv.Run(ctx, bin, "leases", "-config", conf)
	if err != nil {
		t.Fatalf("leases: %v\n%s", err, leases)
	}
	for _, m := range macs {
		colon := strings.ToLower(m[0:2] + ":" + m[2:4] + ":" + m[4:6] + ":" + m[6:8] + ":" + m[8:10] + ":" + m[10:12])
		if !strings.Contains(leases, colon) {
			t.Errorf("no lease for %s:\n%s", colon, leases)
		}
	}
}
