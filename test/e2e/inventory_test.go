package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/inventory/pgstore"
)

// stormPhones GETs the general settings file for phones first..first+n-1,
// 16 at a time, each with its own User-Agent, and fails on any answer but
// 200 with the file.
func stormPhones(t *testing.T, port, first, n int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	for i := first; i < first+n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/snomD785.htm", port), nil)
			req.Header.Set("User-Agent", fmt.Sprintf("Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 000413F%05X SXM:0 UXM:0)", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !regexp.MustCompile(`<settings>`).Match(body) {
				errs <- fmt.Errorf("phone %d: %d %.80q", i, resp.StatusCode, body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
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
