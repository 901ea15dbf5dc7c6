package e2e

// A server that cannot start stops the appliance with exit code 1, the
// cause in one line, and no READY=1 (service_test.go covers the rest of
// the systemd contract).

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/lantest"
)

func loopbackConfig(t *testing.T, port int) string {
	dir := t.TempDir()
	return writeConfig(t, `[server]
interface = "lo"
state_dir = "`+filepath.Join(dir, "state")+`"
[http]
listen = "127.0.0.1:`+strconv.Itoa(port)+`"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "`+dir+`"
[pnp]
enabled = false
`)
}

func TestServeFailsWithOneLineCause(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	n := listenNotify(t)
	cmd := exec.Command(binary(t), "serve", "-config", loopbackConfig(t, port))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.path)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit code 1\n%s", err, out)
	}
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if !strings.HasPrefix(last, "snomprov serve: http: ") || !strings.Contains(last, "address already in use") {
		t.Errorf("last line %q should name the server and the cause\n%s", last, out)
	}
	select {
	case m := <-n.msgs:
		if strings.Contains(m, "READY=1") {
			t.Errorf("READY=1 sent although a listener failed to bind")
		}
	default:
	}
}

// A Raspberry Pi often starts the service before its LAN interface has an
// address: serve waits, says what for, and becomes ready once it appears.
func TestServeWaitsForTheInterfaceAddress(t *testing.T) {
	bin := binary(t)
	l := lantest.New(t, "10.77.0.0/24")
	srv := l.AddHost("srv", lantest.HostOptions{}) // no address yet
	dir := t.TempDir()
	conf := writeConfig(t, `[server]
interface = "eth0"
state_dir = "`+filepath.Join(dir, "state")+`"
[http]
listen = ":8080"
https_listen = ""
cleartext_models = ["snomD785"]
firmware_dir = "`+dir+`"
[pnp]
answer = "snom"
`)
	proc := srv.Start(bin, "serve", "-config", conf)
	if err := proc.WaitOutput("waiting for the LAN interface", 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	if strings.Contains(proc.Output(), "msg=ready") {
		t.Fatalf("ready before the interface has an address:\n%s", proc.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := srv.Run(ctx, "ip", "addr", "add", "10.77.0.1/24", "dev", "eth0"); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	srv.RestoreRoutes()
	if err := proc.WaitOutput("msg=ready", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, proc.Output())
	}
	if !strings.Contains(proc.Output(), "setting_server_url=http://10.77.0.1:8080/") {
		t.Errorf("the URL should name the address that appeared:\n%s", proc.Output())
	}
}
