package packaging

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
)

// checkScript runs inside the booted container as a oneshot unit ordered
// after snomprov.service, writes what it finds to /snomprov-check.out and
// powers the container off. Lines starting with FAIL are failures.
const checkScript = `#!/bin/bash
exec >/snomprov-check.out 2>&1
fail() { echo "FAIL: $*"; }
show() { systemctl show snomprov -p "$1" --value; }
wait_active() {
  for _ in $(seq 1 100); do [ "$(systemctl is-active snomprov)" = active ] && return 0; sleep 0.2; done
  return 1
}
get() { # GET $1 from the service on 127.0.0.1:80
  exec 3<>/dev/tcp/127.0.0.1/80 || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413A11FA7 SXM:0 UXM:0)\r\nConnection: close\r\n\r\n' "$1" >&3
  timeout 5 cat <&3
  exec 3<&-
}

if wait_active; then echo "OK active"; else fail "not active: $(systemctl is-active snomprov), result $(show Result)"; fi
pid=$(show MainPID)
echo "user $(ps -o user= -p "$pid")"
grep -E '^Cap(Eff|Amb|Bnd)' "/proc/$pid/status"
echo "StatusText $(show StatusText)"
case "$(get /snomD785.htm)" in
  "HTTP/1.1 200 OK"*"<settings>"*) echo "OK http" ;;
  *) fail "GET /snomD785.htm: $(get /snomD785.htm | head -c 300)" ;;
esac

# WATCHDOG=1 every WatchdogSec/2 = 15 s: the timestamp moves.
wd0=$(show WatchdogTimestampMonotonic)
sleep 16
wd1=$(show WatchdogTimestampMonotonic)
if [ "$wd0" != "$wd1" ] && [ "$(systemctl is-active snomprov)" = active ]; then echo "OK watchdog"; else fail "watchdog: $wd0 -> $wd1, $(systemctl is-active snomprov)"; fi

if systemctl reload snomprov; then echo "OK reload"; else fail "systemctl reload exited $?"; fi
sleep 1
if [ "$(systemctl is-active snomprov)" = active ] && [ "$(show MainPID)" = "$pid" ]; then echo "OK same process"; else fail "after reload: $(systemctl is-active snomprov), pid $pid -> $(show MainPID)"; fi

# A broken edit: the reload is refused with FILE:LINE:COL and the old
# config keeps serving.
cp /etc/snomprov/snomprov.toml /root/good.toml
printf '\n[[phones]]\nmac = "00:04:13:ZZ"\n' >>/etc/snomprov/snomprov.toml
systemctl reload snomprov
sleep 1
if [ "$(systemctl is-active snomprov)" = active ] && [ "$(show MainPID)" = "$pid" ] && get /snomD785.htm | grep -q '<settings>'; then echo "OK bad reload kept serving"; else fail "after a bad reload: $(systemctl is-active snomprov)"; fi
case "$(show StatusText)" in "RELOAD FAILED, previous config still in use: /etc/snomprov/snomprov.toml:"*) echo "OK bad reload in status" ;; *) fail "status after a bad reload: $(show StatusText)" ;; esac
if journalctl -u snomprov -o cat | grep -Eq 'reload failed.*/etc/snomprov/snomprov.toml:[0-9]+:[0-9]+: phones\[1\]\.mac'; then echo "OK bad reload named"; else fail "no FILE:LINE:COL for the bad config in the journal"; fi
cp /root/good.toml /etc/snomprov/snomprov.toml
systemctl reload snomprov
sleep 1
case "$(show StatusText)" in "http :80, pnp answer=snom, dhcp off; "*) echo "OK good reload clears status" ;; *) fail "status after a good reload: $(show StatusText)" ;; esac

kill -9 "$pid"
sleep 3
if wait_active && [ "$(show MainPID)" != "$pid" ] && [ "$(show NRestarts)" = 1 ]; then echo "OK restarted"; else fail "after kill -9: $(systemctl is-active snomprov), restarts $(show NRestarts)"; fi

systemctl stop snomprov
if [ "$(show Result)" = success ] && [ "$(systemctl is-active snomprov)" = inactive ]; then echo "OK stopped"; else fail "stop: $(systemctl is-active snomprov), result $(show Result), status $(show ExecMainStatus)"; fi

echo "--- journal"
journalctl -u snomprov -o cat --no-pager
echo "--- done"
systemctl poweroff
`

const checkUnit = `[Unit]
Description=snomprov checks (test)
After=snomprov.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/snomprov-check
[Install]
WantedBy=multi-user.target
`

// TestServiceUnderSystemd boots the scratch root with systemd in
// systemd-nspawn, the package installed and its shipped config unchanged,
// on a private namespace LAN (the container shares a namespace made by
// lantest; no interface exists in the host namespace). It checks what only
// a real systemd shows: the sandboxed unit starts (Type=notify reaches
// active), runs as snomprov with exactly its two capabilities, serves,
// pings the watchdog, reloads in place, keeps serving through a reload of
// a broken config (and names file, line and column in the journal), is
// restarted after a crash and stops cleanly.
func TestServiceUnderSystemd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: skipping the systemd boot test")
	}
	needRoot(t)
	nspawn := needTool(t, "systemd-nspawn", "systemd-container")
	l := lantest.New(t, "10.78.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{Addr: "10.78.0.1/24"})
	gw := l.AddHost("gw", lantest.HostOptions{Addr: "10.78.0.254/24", MAC: "02:00:00:00:00:fe"})
	// The shipped config takes the interface of the default route.
	if out, err := srv.Run(context.Background(), "ip", "route", "add", "default", "via", "10.78.0.254"); err != nil {
		t.Fatalf("default route: %v\n%s", err, out)
	}

	c := newChroot(t)
	c.install(debFor(t, "amd64"))
	if err := os.WriteFile(c.path("/usr/local/sbin/snomprov-check"), []byte(checkScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path("/etc/systemd/system/snomprov-check.service"), []byte(checkUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	c.must("systemctl", "enable", "snomprov-check.service")
	// One configured phone, and verify_mac = enforce: the sandboxed service
	// must be able to read the ARP table to refuse the gateway its file.
	conf := readChroot(t, c, conffilePath)
	conf = strings.Replace(conf, `#: verify_mac = "log"`, `verify_mac = "enforce"`, 1)
	conf += "\n[[phones]]\nmac = \"000413A11FA7\"\n[phones.settings]\nuser_pass = { 1 = \"nspawn-secret\" }\n"
	if err := os.WriteFile(c.path(conffilePath), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// --register=no --keep-unit: no systemd runs on the host side to
	// register with. Only the namespace's eth0 and lo exist in there.
	cmd := exec.CommandContext(ctx, nspawn, "--quiet", "--directory="+c.root, "--register=no", "--keep-unit",
		"--network-namespace-path=/run/netns/"+srv.NS, "--boot")
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_TMPFS_TMP=0")
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// While the checks wait for the watchdog, another host on the LAN asks
	// for the phone's file.
	gwCode := ""
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if b, _ := os.ReadFile(c.path("/snomprov-check.out")); bytes.Contains(b, []byte("OK http")) {
			gwCode, _ = gw.Run(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.78.0.1/snomD785-000413A11FA7.htm")
			break
		}
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the container did not power off within 3 minutes; console:\n%s", tail(console.String(), 4000))
	}
	b, rerr := os.ReadFile(c.path("/snomprov-check.out"))
	if rerr != nil {
		t.Fatalf("no check output (nspawn: %v); console:\n%s", err, tail(console.String(), 4000))
	}
	out := string(b)
	t.Logf("checks inside the container:\n%s", out)
	for _, want := range []string{"OK active", "user snomprov", "OK http", "OK watchdog", "OK reload", "OK same process", "OK bad reload kept serving", "OK bad reload in status", "OK bad reload named", "OK good reload clears status",
		"StatusText http :80, pnp answer=snom, dhcp off; 0 phones", "OK restarted", "OK stopped", "--- done"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if gwCode != "404" || !strings.Contains(out, "http.verify_mac = enforce: 10.78.0.254 has MAC 0200000000FE on the LAN, not 000413A11FA7") {
		t.Errorf("the gateway asking for the phone's file got %q; the journal must show the ARP check refusing it", gwCode)
	}
	// CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13), nothing else.
	for _, want := range []string{"CapEff:\t0000000000002400", "CapAmb:\t0000000000002400", "CapBnd:\t0000000000002400"} {
		if !strings.Contains(out, want) {
			t.Errorf("capabilities: missing %q", want)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL") || strings.Contains(line, "level=ERROR") && !strings.Contains(line, "reload failed") {
			t.Errorf("%s", line)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
