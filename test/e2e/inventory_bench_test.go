package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/internal/procstat"
)

// BenchmarkHTTPStormInventory: 5000 phones each fetch their general and
// per-MAC settings files from the real binary (16 at a time, keep-alive),
// with the file inventory and with the PostgreSQL one, in the same run.
// Reports the storm's time, the requests' p50/p99 latency and the
// appliance's peak RSS; with PostgreSQL, also the time until every event
// is in the database.
//
//	go test -run XXX -bench HTTPStormInventory -benchtime 1x ./test/e2e
func BenchmarkHTTPStormInventory(b *testing.B) {
	const phones, workers = 5000, 16
	for _, store := range []string{"file", "postgres"} {
		b.Run(store, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				extra := ""
				if store == "postgres" {
					pg := pgtest.Start(b)
					extra = fmt.Sprintf("\n[inventory]\nurl = %q\nsite = \"bench\"\n", pg.URL())
				}
				_, port, cfgPath := httpEnv(b, "")
				appendFile(b, cfgPath, extra)
				p := startServe(b, cfgPath)
				tr := &http.Transport{MaxIdleConnsPerHost: workers}
				client := &http.Client{Transport: tr}
				lat := make([]time.Duration, 2*phones)
				var wg sync.WaitGroup
				var failed sync.Map
				t0 := time.Now()
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						for n := w; n < phones; n += workers {
							mac := fmt.Sprintf("000413E%05X", n)
							for k, path := range []string{"/snomD785.htm", "/snomD785-" + mac + ".htm"} {
								req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
								req.Header.Set("User-Agent", "Mozilla/4.0 (compatible; snomD785-SIP 10.1.33.33 2010.12-00004-g9ba52f5 "+mac+" SXM:0 UXM:0)")
								s := time.Now()
								resp, err := client.Do(req)
								if err != nil {
									failed.Store(path, err)
									continue
								}
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
								lat[2*n+k] = time.Since(s)
								if resp.StatusCode >= 500 {
									failed.Store(path, resp.Status)
								}
							}
						}
					}(w)
				}
				wg.Wait()
				storm := time.Since(t0)
				failed.Range(func(k, v any) bool { b.Errorf("%v: %v", k, v); return true })
				if store == "postgres" {
					for scrapeMetric(b, port, "snomprov_inventory_written_events_total") < 2*phones {
						time.Sleep(10 * time.Millisecond)
					}
					b.ReportMetric(time.Since(t0).Seconds(), "s-until-in-db")
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(storm.Seconds(), "s-storm")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "VmHWM"), "appliance-peak-RSS-MB")
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "RssFile"), "appliance-RSS-file-MB")
				tr.CloseIdleConnections()
				p.stop(b)
			}
		})
	}
}
