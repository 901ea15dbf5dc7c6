package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/internal/procstat"
)

// BenchmarkHTTPStormInventory: 5000 phones each fetch their general and
// per-MAC settings files from the real binary (16 at a time, keep-alive),
// with the file inventory and with the PostgreSQL one, in the same run.
// Reports the storm's time, the requests' p50/p99 latency, the appliance's
// peak RSS, the CPU-seconds the appliance, the phones (this process) and
// PostgreSQL used during the storm, and how long the appliance's threads
// waited for a CPU then; with PostgreSQL, also the time
// until every event is in the database and the database's CPU until then.
//
//	go test -run XXX -bench HTTPStormInventory -benchtime 1x ./test/e2e
//
// With a -tags pprof build in SNOMPROV_TEST_BINARY and SNOMPROV_PPROF set
// (cmd/snomprov/pprof.go), each storm also saves a 2 s CPU profile of the
// appliance from the storm's start, in SNOMPROV_BENCH_PROFILES (a
// directory), as STORE-N.pprof, N counting the storms of the run; with
// SNOMPROV_BENCH_TRACE=1 an execution trace instead (STORE-N.trace, for
// `go tool trace`, e.g. -pprof=sched for where goroutines waited to run).
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
				dbCPU := func() float64 {
					if pg == nil {
						return 0
					}
					return pg.CPUSeconds()
				}
				appCPU0, dbCPU0, clientCPU0 := procstat.CPUSeconds(p.cmd.Process.Pid), dbCPU(), procstat.CPUSeconds(os.Getpid())
				appWait0 := procstat.RunQueueSeconds(p.cmd.Process.Pid)
				t0 := time.Now()
				profiled := profileAppliance(b, store)
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
				// The CPU of the storm itself, at its end for both stores: the
				// wait for the database below polls /metrics, whose phone
				// counts cost the appliance CPU of their own.
				b.ReportMetric(procstat.CPUSeconds(p.cmd.Process.Pid)-appCPU0, "appliance-CPU-s")
				b.ReportMetric(procstat.RunQueueSeconds(p.cmd.Process.Pid)-appWait0, "appliance-runqueue-s")
				b.ReportMetric(procstat.CPUSeconds(os.Getpid())-clientCPU0, "phones-CPU-s")
				if store == "postgres" {
					b.ReportMetric(dbCPU()-dbCPU0, "db-CPU-s")
					for scrapeMetric(b, port, "snomprov_inventory_written_events_total") < 2*phones {
						time.Sleep(10 * time.Millisecond)
					}
					b.ReportMetric(time.Since(t0).Seconds(), "s-until-in-db")
					b.ReportMetric(dbCPU()-dbCPU0, "db-CPU-until-in-db-s")
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(storm.Seconds(), "s-storm")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				<-profiled
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "VmHWM"), "appliance-peak-RSS-MB")
				b.ReportMetric(procstat.MB(p.cmd.Process.Pid, "RssFile"), "appliance-RSS-file-MB")
				p.stop(b)
			}
		})
	}
}

var profiles atomic.Int32

// profileAppliance starts fetching a 2 s CPU profile of the appliance when
// SNOMPROV_PPROF and SNOMPROV_BENCH_PROFILES are set; the channel closes
// when it is saved (at once when they are not).
func profileAppliance(b *testing.B, store string) <-chan struct{} {
	name := fmt.Sprintf("%s-%d", store, profiles.Add(1))
	done := make(chan struct{})
	addr, dir := os.Getenv("SNOMPROV_PPROF"), os.Getenv("SNOMPROV_BENCH_PROFILES")
	if addr == "" || dir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		kind, ext := "profile", ".pprof"
		if os.Getenv("SNOMPROV_BENCH_TRACE") == "1" {
			kind, ext = "trace", ".trace"
		}
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + kind + "?seconds=2")
		if err != nil {
			b.Errorf("profile: %v", err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Errorf("profile: %d %v", resp.StatusCode, err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, name+ext), body, 0o644); err != nil {
			b.Error(err)
		}
	}()
	return done
}
