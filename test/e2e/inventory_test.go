package e2e

import (
	"context"
	"encoding/json"
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

	"github.com/snomprov/snomprov/internal/lantest"
	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/inventory/pgstore"
)

// phoneStorm is a boot storm of phones first..first+n-1, each with its own
// Snom User-Agent (MAC 000413 + macTag + the phone's number) GETting paths,
// workers at a time over keep-alive connections to addr, from the
// namespace from names. done is called (from the workers) after each
// request with its latency, status and body, or its error.
type phoneStorm struct {
	addr              string // host:port
	from              web
	first, n, workers int
	macTag            string // one hex digit, so that storms do not share MACs
	paths             func(mac string) []string
	done              func(phone int, path string, d time.Duration, status int, body []byte, err error)
}

// web is where HTTP clients connect from: the test's own network namespace
// (the zero value), or a host of a simulated LAN, every connection of the
// client then dialled inside that host's namespace.
type web struct{ host *lantest.Host }

func (w web) client(conns int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	if w.host != nil {
		tr.DialContext = func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = w.host.Do(func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

func (st phoneStorm) run() {
	client := st.from.client(st.workers)
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := 0; w < st.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := st.first + w; i < st.first+st.n; i += st.workers {
				mac := fmt.Sprintf("000413%s%05X", st.macTag, i)
				for _, path := range st.paths(mac) {
					req, _ := http.NewRequest(http.MethodGet, "http://"+st.addr+path, nil)
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
	phoneStorm{addr: loopback(port), first: first, n: n, workers: 16, macTag: "F", paths: generalFile,
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

// scrapeMetric reads one unlabelled sample from /metrics on loopback.
func scrapeMetric(t testing.TB, port int, name string) float64 {
	t.Helper()
	return scrapeMetricAt(t, http.DefaultClient, loopback(port), name)
}

// scrapeMetricAt reads one unlabelled sample from /metrics at addr.
func scrapeMetricAt(t testing.TB, c *http.Client, addr, name string) float64 {
	t.Helper()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricValue(t, string(b), name)
}

func waitMetric(t *testing.T, port int, name string, want float64) {
	t.Helper()
	waitMetricAt(t, http.DefaultClient, loopback(port), name, want)
}

func waitMetricAt(t *testing.T, c *http.Client, addr, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for v := scrapeMetricAt(t, c, addr, name); v != want; v = scrapeMetricAt(t, c, addr, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s = %v after 30 s, want %v", name, addr, v, want)
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

// nginxLB is the config of a load balancer on listen in front of the
// upstreams (host:port), run in the foreground as one process, retrying
// the next upstream when one fails, and logging each request with the
// upstreams it tried to dir/access.log.
func nginxLB(dir, listen string, upstreams []string) string {
	var up strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&up, "    server %s max_fails=1 fail_timeout=60s;\n", u)
	}
	return fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  log_format tried '$http_user_agent|$request_uri|$status|$upstream_addr';
  access_log %[1]s/access.log tried;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream snomprov {
%[2]s    keepalive 16;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://snomprov;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header User-Agent $http_user_agent;
      proxy_next_upstream error timeout http_502;
      proxy_connect_timeout 1s;
    }
  }
}
`, dir, up.String(), listen)
}

// lbRequest is one line of nginxLB's access log.
type lbRequest struct {
	mac, path string
	status    int
	tried     []string // the upstreams, in order; the last one answered
}

var macInUA = regexp.MustCompile(`000413[0-9A-F]{6}`)

func readLBLog(t *testing.T, path string) []lbRequest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []lbRequest
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("nginx access log: %q", line)
		}
		r := lbRequest{mac: macInUA.FindString(f[0]), path: f[1], tried: strings.Split(f[3], ", ")}
		fmt.Sscan(f[2], &r.status)
		reqs = append(reqs, r)
	}
	return reqs
}

// Three appliances of one site, each in its own namespace of a simulated
// LAN, share the PostgreSQL inventory (a Unix socket, reached through the
// file system from every namespace); nginx in a fourth namespace balances
// them; the phones boot from a fifth. One appliance is killed with
// SIGKILL in the middle of the storm. Every phone gets its files (nginx
// retries the next appliance), and once the killed one is started again on
// its state directory, its spool is replayed: nginx's log says which
// appliances each request reached, and the database holds exactly one
// event per answered request, never a second copy of a spooled one.
func TestInventoryThreeAppliancesOnALANBehindNginxOneKilled(t *testing.T) {
	bin := binary(t)
	pg := pgtest.Start(t)
	nginx := needTool(t, "nginx")
	l := lantest.New(t, "10.79.0.0/24")
	phonesHost := l.AddHost("phones", lantest.HostOptions{Addr: "10.79.0.100/24"})
	lbHost := l.AddHost("lb", lantest.HostOptions{Addr: "10.79.0.2/24"})

	var apps []*lantest.Host
	var addrs, cfgs []string
	var procs []*lantest.Process
	start := func(i int) *lantest.Process {
		p := apps[i].Start(bin, "serve", "-config", cfgs[i])
		if err := p.WaitOutput("msg=ready", 15*time.Second); err != nil {
			t.Fatalf("appliance %d: %v\n%s", i+1, err, p.Output())
		}
		return p
	}
	for i := 0; i < 3; i++ {
		ip := fmt.Sprintf("10.79.0.%d", 11+i)
		apps = append(apps, l.AddHost(fmt.Sprintf("app%d", i+1), lantest.HostOptions{Addr: ip + "/24"}))
		dir := t.TempDir()
		cfg := filepath.Join(dir, "snomprov.toml")
		// The same file on each appliance but for its state directory.
		if err := os.WriteFile(cfg, []byte(lanServer(filepath.Join(dir, "state"))+fmt.Sprintf(`unknown_phones = "allow"
[pnp]
enabled = false
[inventory]
url = %q
site = "lb"
`, pg.URL())), 0o644); err != nil {
			t.Fatal(err)
		}
		addrs, cfgs = append(addrs, ip+":80"), append(cfgs, cfg)
		procs = append(procs, start(i))
	}
	lbDir := t.TempDir()
	lbConf := filepath.Join(lbDir, "nginx.conf")
	if err := os.WriteFile(lbConf, []byte(nginxLB(lbDir, "10.79.0.2:80", addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	lbProc := lbHost.Start(nginx, "-c", lbConf, "-e", filepath.Join(lbDir, "error.log"))
	if err := lbHost.WaitListen("tcp", 80, 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(lbDir, "error.log"))
		t.Fatalf("%v\n%s%s", err, lbProc.Output(), b)
	}
	from := web{phonesHost}
	client := from.client(1)
	defer client.CloseIdleConnections()
	for _, a := range addrs {
		waitMetricAt(t, client, a, "snomprov_inventory_database_up", 1)
	}

	const phones, workers, killAt = 600, 16, 400 // two files per phone: killed at a third of the requests
	var answered atomic.Int32
	var once sync.Once
	var mu sync.Mutex
	var failed []string
	phoneStorm{addr: "10.79.0.2:80", from: from, n: phones, workers: workers, macTag: "D",
		paths: func(mac string) []string { return []string{"/snomD785.htm", "/snomD785-" + mac + ".htm"} },
		done: func(i int, path string, _ time.Duration, status int, body []byte, err error) {
			if err != nil || status != 200 || !strings.Contains(string(body), "<settings>") {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("phone %d %s: %d %v %.80q", i, path, status, err, body))
				mu.Unlock()
			}
			if answered.Add(1) == killAt {
				once.Do(func() {
					procs[1].Signal(syscall.SIGKILL) // kill -9
					<-procs[1].Done()
				})
			}
		}}.run()
	for _, f := range failed {
		t.Error(f)
	}
	select {
	case <-procs[1].Done():
	default:
		t.Fatal("appliance 2 was not killed during the storm")
	}
	for _, i := range []int{0, 2} {
		waitMetricAt(t, client, addrs[i], "snomprov_inventory_buffered_events", 0)
	}
	// What the killed appliance left in its spool: events it had not yet
	// emptied from it (some maybe stored, some not).
	spoolPath := filepath.Join(filepath.Dir(cfgs[1]), "state", pgstore.SpoolName)
	b, err := os.ReadFile(spoolPath)
	if err != nil {
		t.Fatal(err)
	}
	var spooled []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct {
			Key string `json:"k"`
		}
		if line != "" && json.Unmarshal([]byte(line), &rec) == nil {
			spooled = append(spooled, rec.Key)
		}
	}
	// The killed appliance starts again on its state directory: its spool
	// is replayed, and then emptied.
	procs[1] = start(1)
	waitMetricAt(t, client, addrs[1], "snomprov_inventory_buffered_events", 0)
	if b, err := os.ReadFile(spoolPath); err != nil || len(b) != 0 {
		t.Errorf("the restarted appliance's spool: %d bytes, %v; want it replayed and emptied", len(b), err)
	}
	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var replayed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM snomprov_events WHERE site = 'lb' AND event_key = ANY($1)`, spooled).Scan(&replayed); err != nil {
		t.Fatal(err)
	}
	if replayed != len(spooled) {
		t.Errorf("%d of the %d events in the killed appliance's spool are in the database after its restart", replayed, len(spooled))
	}

	// What nginx did with each request, and what the database holds.
	lbProc.Stop() // flushes the access log
	reqs := readLBLog(t, filepath.Join(lbDir, "access.log"))
	if len(reqs) != 2*phones {
		t.Fatalf("nginx logged %d requests, want %d", len(reqs), 2*phones)
	}
	rows, err := pool.Query(ctx, `SELECT mac, detail FROM snomprov_events WHERE site = 'lb'`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]string]int{} // (MAC, path): events
	total := 0
	for rows.Next() {
		var mac, detail string
		if err := rows.Scan(&mac, &detail); err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(detail) // "GET /snomD785.htm ok 812B"
		if len(f) < 2 {
			t.Fatalf("event detail %q", detail)
		}
		stored[[2]string{mac, f[1]}]++
		total++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	killed := addrs[1]
	var retried, lostAtKill int
	for _, r := range reqs {
		n := stored[[2]string{r.mac, r.path}]
		last := r.tried[len(r.tried)-1]
		switch {
		case r.status != 200:
			t.Errorf("%s %s: nginx answered %d after %v", r.mac, r.path, r.status, r.tried)
		case len(r.tried) > 1:
			// The killed appliance may have recorded it before it died,
			// and the next one did: one or two events, each its own.
			retried++
			if n < 1 || n > len(r.tried) {
				t.Errorf("%s %s tried %v: %d events stored, want 1 to %d", r.mac, r.path, r.tried, n, len(r.tried))
			}
		case last == killed && n == 0:
			// Answered by the killed appliance in its last instant, between
			// the answer and the spool: lost with the process.
			lostAtKill++
		case n != 1:
			t.Errorf("%s %s answered by %s: %d events stored, want exactly 1", r.mac, r.path, last, n)
		}
	}
	if lostAtKill > workers {
		t.Errorf("%d requests answered by the killed appliance are not in the database; at most the %d in flight at the kill may be", lostAtKill, workers)
	}
	t.Logf("%d requests through nginx, %d retried on another appliance after the kill, %d answered by the killed one in its last instant and lost with it; %d events stored, %d events in the killed one's spool at the kill",
		len(reqs), retried, lostAtKill, total, len(spooled))
}
