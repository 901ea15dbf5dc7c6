package e2e

// A server that cannot start stops the appliance with exit code 1, the
// cause in one line, and no READY=1 (service_test.go covers the rest of
// the systemd contract).

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func loopbackConfig(t *testing.T, port int) string {
	dir := t.TempDir()
	return writeConfig(t, `[server]
interface = "lo"
state_dir = "`+filepath.Join(dir, "state")+`"
[http]
listen = "127.0.0.1:`+strconv.Itoa(port)+`"
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
