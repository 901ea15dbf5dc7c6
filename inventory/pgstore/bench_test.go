package pgstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/internal/procstat"
	"github.com/snomprov/snomprov/inventory"
)

// The boot-storm load: stormPhones phones, each recording stormEvents
// events (DHCP DISCOVER/REQUEST/ACK, PnP SUBSCRIBE/NOTIFY-ACKED, general,
// phone, firmware file, image, one more file), from 8 goroutines as the
// three servers do.
const (
	stormPhones  = 5000
	stormEvents  = 10
	stormWorkers = 8
)

type recorder interface {
	Record(inventory.Observation)
}

// storm records the load and returns each Record's latency.
func storm(r recorder) []time.Duration {
	lat := make([]time.Duration, stormPhones*stormEvents)
	var wg sync.WaitGroup
	for w := 0; w < stormWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < stormPhones; i += stormWorkers {
				for n := 0; n < stormEvents; n++ {
					o := obs(i, n)
					t0 := time.Now()
					r.Record(o)
					lat[i*stormEvents+n] = time.Since(t0)
				}
			}
		}(w)
	}
	wg.Wait()
	return lat
}

func report(b *testing.B, lat []time.Duration, total time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/total.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "record-p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "record-p99-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "record-max-ns")
	b.ReportMetric(procstat.MB(0, "VmHWM"), "peak-RSS-MB") // one benchmark per process for a figure of its own
}

// BenchmarkStormFileStore: the load into the file store, then its
// snapshot written (events/s counts both).
func BenchmarkStormFileStore(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s, err := inventory.Open(filepath.Join(b.TempDir(), "phones.json"), inventory.Options{})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		lat := storm(s)
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		report(b, lat, time.Since(t0))
	}
}

// BenchmarkStormPostgres: the load into the PostgreSQL store, until every
// event is in the database (events/s is what reached PostgreSQL).
func BenchmarkStormPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	for i := 0; i < b.N; i++ {
		s, err := Open(Options{URL: pg.URL(), Site: fmt.Sprintf("bench-%d", i), StateDir: b.TempDir(), Interval: 100 * time.Millisecond}, quiet)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		// Connected and migrated before the clock starts.
		for !s.Stats().Connected {
			time.Sleep(10 * time.Millisecond)
		}
		t0 := time.Now()
		lat := storm(s)
		for s.Stats().Buffered > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		total := time.Since(t0)
		cancel()
		<-done
		if st := s.Stats(); st.Dropped != 0 || st.Written != stormPhones*stormEvents {
			b.Fatalf("stats %+v", st)
		}
		report(b, lat, total)
	}
}

// BenchmarkStoreBatch: one send's transaction, a full batch of 1000
// events of 250 phones, against PostgreSQL on this machine. Besides the
// time per batch it reports this process's CPU per event (the appliance's
// share: building and encoding the batch) and the database's. It runs once
// per database locale (the cluster's own C, then locales such as a
// database created by Debian's pg_createcluster on a German or American
// system gets, where this system has them), since text keys compare by
// the database's collation unless the schema says otherwise.
func BenchmarkStoreBatch(b *testing.B) {
	pg := pgtest.Start(b)
	for _, locale := range []string{"C", "C.UTF-8", "en_US.UTF-8", "de_DE.UTF-8"} {
		b.Run("locale="+locale, func(b *testing.B) {
			url := pg.URL()
			if locale != "C" {
				var err error
				if url, err = localeDatabase(pg, locale); err != nil {
					b.Skip(err)
				}
			}
			benchmarkStoreBatch(b, pg, url)
		})
	}
}

func benchmarkStoreBatch(b *testing.B, pg *pgtest.Server, url string) {
	s, err := Open(Options{URL: url, Site: "bench", StateDir: b.TempDir()}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer s.pool.Close()
	if err := Migrate(context.Background(), s.pool); err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	recs := make([]record, batch)
	next := func() {
		for i := range recs {
			o := obs(i%250, i/250)
			o.Event.Time = time.Now()
			recs[i] = record{Key: s.key(), Site: "bench", obs: o}
		}
	}
	next()
	if err := s.store(context.Background(), recs); err != nil { // warm: the statements prepared
		b.Fatal(err)
	}
	b.ResetTimer()
	var own, db float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next()
		own0, db0 := procstat.CPUSeconds(os.Getpid()), pg.CPUSeconds()
		b.StartTimer()
		if err := s.store(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		own += procstat.CPUSeconds(os.Getpid()) - own0
		db += pg.CPUSeconds() - db0
	}
	b.ReportMetric(own/float64(b.N*batch)*1e9, "appliance-CPU-ns/event")
	b.ReportMetric(db/float64(b.N*batch)*1e9, "db-CPU-ns/event")
}
