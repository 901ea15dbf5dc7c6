package e2e

import (
	"fmt"
	"os"
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
// Reports the storm's time, the requests' p50/p99 latency, the appliance's
// peak RSS, and the CPU-seconds of the appliance and of the phones (this
// process) until every event is stored; with PostgreSQL, also the time
// until every event is in the database and the database's CPU-seconds.
//
//	go test -run XXX -bench HTTPStormInventory -benchtime 1x ./test/e2e
func BenchmarkHTTPStormInventory(b *testing.B) {
	const phones, workers = 5000, 16
	for _, store := range []string{"file", "postgres"} {
		b.Run(store, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				extra := ""
				var pg *pgtest.Server
				if store == "postgres" {
					pg = pgtest.Start(b)
					extra = fmt.Sprintf("\n[inventory]\nurl = %q\nsite = \"bench\"\n", pg.URL())
				}
				_, port, cfgPath := httpEnv(b, "")
				appendFile(b, cfgPath, extra)
				p := startServe(b, cfgPath)
				if store == "postgres" {
					// Connected and migrated before the clock starts, as in bench/boot.sh.
					for deadline := time.Now().Add(10 * time.Second); scrapeMetric(b, port, "snomprov_inventory_database_up") != 1; time.Sleep(10 * time.Millisecond) {
						if time.Now().After(deadline) {
							b.Fatal("the appliance did not connect to PostgreSQL within 10 s")
						}
					}
				}
				lat := make([]time.Duration, 0, 2*phones)
				var mu sync.Mutex
				// The database's CPU is its postmaster's and backends' (the
				// appliance's connections stay open, so none exits mid-storm).
				dbCPU := func() float64 {
					if pg == nil {
						return 0
					}
					return procstat.CPUSeconds(procstat.Children(pg.PID())...)
				}
				appCPU0, dbCPU0, clientCPU0 := procstat.CPUSeconds(p.cmd.Process.Pid), dbCPU(), procstat.CPUSeconds(os.Getpid())
				t0 := time.Now()
				phoneStorm{addr: loopback(port), n: phones, workers: workers, macTag: "E",
					paths: func(mac string) []string { return []string{"/snomD785.htm", "/snomD785-" + mac + ".htm"} },
					done: func(_ int, path string, d time.Duration, status int, _ []byte, err error) {
						mu.Lock()
						defer mu.Unlock()
						lat = append(lat, d)
						if err != nil || status >= 500 {
							b.Errorf("%s: %d %v", path, status, err)
						}
					}}.run()
				storm := time.Since(t0)
				if store == "postgres" {
					for scrapeMetric(b, port, "snomprov_inventory_written_events_total") < 2*phones {
						time.Sleep(10 * time.Millisecond)
					}
					b.ReportMetric(time.Since(t0).Seconds(), "s-until-in-db")
					b.ReportMetric(dbCPU()-dbCPU0, "db-CPU-s")
				}
				// Until every event is stored: the appliance's share of the work.
				b.ReportMetric(procstat.CPUSeconds(p.cmd.Process.Pid)-appCPU0, "appliance-CPU-s")
				b.ReportMetric(procstat.CPUSeconds(os.Getpid())-clientCPU0, "phones-CPU-s")
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(storm.Seconds(), "s-storm")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "VmHWM"), "appliance-peak-RSS-MB")
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "RssFile"), "appliance-RSS-file-MB")
				p.stop(b)
			}
		})
	}
}
