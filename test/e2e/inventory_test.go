package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/inventory/pgstore"
)

// phoneStorm is a boot storm of phones first..first+n-1, each with its own
// Snom User-Agent (MAC 000413 + macTag + the phone's number) GETting paths,
// workers at a time over keep-alive connections to 127.0.0.1:port. done is
// called (from the workers) after each request with its latency, status
// and body, or its error.
type phoneStorm struct {
	port, first, n, workers int
	macTag                  string // one hex digit, so that storms do not share MACs
	paths                   func(mac string) []string
	done                    func(phone int, path string, d time.Duration, status int, body []byte, err error)
}

func (st phoneStorm) run() {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: st.workers}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := 0; w < st.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := st.first + w; i < st.first+st.n; i += st.workers {
				mac := fmt.Sprintf("000413%s%05X", st.macTag, i)
				for _, path := range st.paths(mac) {
					req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", st.port, path), nil)
					req.Header.Set("User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 "+mac+" SXM:0 UXM:0)")
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						st.done(i, path, time.Since(t0), 0, nil, err)
						continue
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					st.done(i, path, time.Since(t0), resp.StatusCode, body, err)
				}
			}
		}(w)
	}
	wg.Wait()
}

func generalFile(string) []string { return []string{"/snomD785.htm"} }

// stormPhones: every phone of first..first+n-1 must get its general
// settings file.
func stormPhones(t *testing.T, port, first, n int) {
	t.Helper()
	var mu sync.Mutex
	var failed []string
	phoneStorm{port: port, first: first, n: n, workers: 16, macTag: "F", paths: generalFile,
		done: func(i int, _ string, _ time.Duration, status int, body []byte, err error) {
			if err != nil || status != 200 || !strings.Contains(string(body), "<settings>") {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("phone %d: %d %v %.80q", i, status, err, body))
				mu.Unlock()
			}
		}}.run()
	for _, f := range failed {
		t.Error(f)
	}
}

// appendFile appends text to the file at path.
func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetric reads one unlabelled sample from /metrics.
func scrapeMetric(t testing.TB, port int, name string) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricValue(t, string(b), name)
}

func waitMetric(t *testing.T, port int, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for v := scrapeMetric(t, port, name); v != want; v = scrapeMetric(t, port, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 30 s, want %v", name, v, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PostgreSQL is stopped in the middle of a boot storm: every phone still
// gets its settings, /metrics counts what waits, and once the database is
// back every event is in it exactly once.
func TestInventoryDatabaseStoppedDuringStorm(t *testing.T) {
	pg := pgtest.Start(t)
	_, port, cfgPath := httpEnv(t, "")
	appendFile(t, cfgPath, fmt.Sprintf("\n[inventory]\nurl = %q\nsite = \"e2e\"\n", pg.URL()))
	p := startServe(t, cfgPath)

	const before, during = 100, 300
	stormPhones(t, port, 0, before)
	waitMetric(t, port, "snomprov_inventory_written_events_total", before)
	waitMetric(t, port, "snomprov_inventory_database_up", 1)

	pg.Stop()
	stormPhones(t, port, before, during)
	waitMetric(t, port, "snomprov_inventory_buffered_events", during)
	waitMetric(t, port, "snomprov_inventory_database_up", 0)

	pg.Start()
	waitMetric(t, port, "snomprov_inventory_buffered_events", 0)
	waitMetric(t, port, "snomprov_inventory_written_events_total", before+during)
	if v := scrapeMetric(t, port, "snomprov_inventory_dropped_events_total"); v != 0 {
		t.Errorf("dropped %v events", v)
	}
	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var events, macs, phones int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT mac) FROM snomprov_events WHERE site = 'e2e' AND step = 'general'`).Scan(&events, &macs); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM snomprov_phones WHERE site = 'e2e'`).Scan(&phones); err != nil {
		t.Fatal(err)
	}
	if events != before+during || macs != before+during || phones != before+during {
		t.Errorf("database: %d events of %d MACs, %d phones; want %d of each", events, macs, phones, before+during)
	}
	// snomprov phones reads the shared inventory.
	out, err := exec.Command(binary(t), "phones", "-config", cfgPath, "--site", "e2e", "--json").Output()
	if err != nil {
		t.Fatalf("snomprov phones: %v", err)
	}
	if n := regexp.MustCompile(`"site": "e2e"`).FindAll(out, -1); len(n) != before+during {
		t.Errorf("snomprov phones --site e2e lists %d phones, want %d", len(n), before+during)
	}
	p.stop(t)
}

// startNginx runs nginx on loopback in front of the given ports (one
// process, no daemon) and stops it by its PID at cleanup.
func startNginx(t *testing.T, ports []int) int {
	t.Helper()
	nginx := needTool(t, "nginx")
	dir := t.TempDir()
	port := freePort(t)
	var up strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&up, "    server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n", p)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream snomprov {
%[2]s  }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://snomprov;
      proxy_set_header User-Agent $http_user_agent;
      proxy_next_upstream error timeout http_502;
      proxy_connect_timeout 1s;
    }
  }
}
`, dir, up.String(), port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", path, "-e", filepath.Join(dir, "error.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx not listening after 10 s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Three appliances of one site behind nginx share the PostgreSQL
// inventory; one is killed with SIGKILL in the middle of a boot storm.
// Every phone gets its file (nginx retries the next appliance), and once
// the killed one is started again its spool is replayed without storing
// anything twice.
func TestInventoryThreeAppliancesBehindNginxOneKilled(t *testing.T) {
	pg := pgtest.Start(t)
	var ports []int
	var cfgs []string
	var procs []*serveProc
	for i := 0; i < 3; i++ {
		_, port, cfg := httpEnv(t, "")
		appendFile(t, cfg, fmt.Sprintf("\n[inventory]\nurl = %q\nsite = \"lb\"\n", pg.URL()))
		ports, cfgs = append(ports, port), append(cfgs, cfg)
		procs = append(procs, startServe(t, cfg))
	}
	lb := startNginx(t, ports)

	const phones, workers, killAt = 900, 16, 300
	var answered atomic.Int32
	var once sync.Once
	var mu sync.Mutex
	var failed []string
	phoneStorm{port: lb, n: phones, workers: workers, macTag: "D", paths: generalFile,
		done: func(i int, _ string, _ time.Duration, status int, body []byte, err error) {
			if err != nil || status != 200 || !strings.Contains(string(body), "<settings>") {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("phone %d: %d %v %.80q", i, status, err, body))
				mu.Unlock()
			}
			if answered.Add(1) == killAt {
				once.Do(func() {
					procs[1].Kill()
				})
			}
		}}.run()
	for _, f := range failed {
		t.Error(f)
	}
	if procs[1].cmd.ProcessState == nil {
		t.Fatal("appliance 2 was not killed during the storm")
	}
	for _, i := range []int{0, 2} {
		waitMetric(t, ports[i], "snomprov_inventory_buffered_events", 0)
	}
	// The killed appliance starts again on its state directory: its spool
	// is replayed, and then emptied.
	procs[1] = startServe(t, cfgs[1])
	waitMetric(t, ports[1], "snomprov_inventory_buffered_events", 0)

	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var events, macs int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT mac) FROM snomprov_events WHERE site = 'lb'`).Scan(&events, &macs); err != nil {
		t.Fatal(err)
	}
	// An event recorded by the killed appliance in the instant before the
	// kill, not yet in its spool, is lost (at most the requests in flight);
	// a request nginx retried on another appliance may be recorded by both.
	// A replay that stored spooled events a second time would exceed that.
	if macs < phones-workers || events < phones-workers || events > phones+workers {
		t.Errorf("database: %d events of %d phones for %d phones served; want each phone once, give or take the %d requests in flight at the kill", events, macs, phones, workers)
	}
	t.Logf("%d phones served, %d events of %d phones stored", phones, events, macs)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(cfgs[1]), "state", pgstore.SpoolName))
	if err != nil || len(b) != 0 {
		t.Errorf("the restarted appliance's spool: %d bytes, %v; want it replayed and emptied", len(b), err)
	}
}
