package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snomprov/snomprov/internal/pgtest"
	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testMAC(i int) phone.MAC {
	m, _ := phone.ParseMAC(fmt.Sprintf("000413%06X", i))
	return m
}

func obs(i, n int) inventory.Observation {
	return inventory.Observation{MAC: testMAC(i), Model: "snomD785", IP: netip.MustParseAddr("10.77.0.10"),
		Event: inventory.Event{Step: inventory.StepGeneral, Kind: inventory.HTTPKind(200), OK: true, Detail: fmt.Sprintf("event %d of phone %d", n, i)}}
}

// localeDatabase creates a database whose default locale is locale on
// pg, unless it exists, and returns its URL; an error when this system
// lacks the locale.
func localeDatabase(pg *pgtest.Server, locale string) (string, error) {
	ctx := context.Background()
	p, err := Connect(ctx, pg.URL())
	if err != nil {
		return "", err
	}
	defer p.Close()
	name := "locale_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToLower(locale))
	if _, err := p.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+
		` TEMPLATE template0 ENCODING 'UTF8' LOCALE '`+strings.ReplaceAll(locale, "'", "''")+`'`); err != nil && !isDuplicateDatabase(err) {
		return "", fmt.Errorf("a database in locale %s: %w", locale, err)
	}
	return pg.DatabaseURL(name), nil
}

func isDuplicateDatabase(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P04"
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// start opens a store and runs it until the test ends (or stop is called).
func start(t *testing.T, opts Options) (s *Store, stop func()) {
	t.Helper()
	s, err := Open(opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return s, stop
}

// waitDrained waits for every buffered event to be in the database.
func waitDrained(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Buffered > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events still buffered after 30 s: %+v", s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventCounts returns how many times each event detail is stored.
func eventCounts(t *testing.T, p *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := p.Query(context.Background(), `SELECT site || ' ' || detail, count(*) FROM snomprov_events GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			t.Fatal(err)
		}
		out[d] = n
	}
	return out
}

// exactlyOnce checks that every event of want phones × per events of site
// is stored once.
func exactlyOnce(t *testing.T, p *pgxpool.Pool, site string, phones, per int) {
	t.Helper()
	counts := eventCounts(t, p)
	missing, doubled := 0, 0
	for i := 0; i < phones; i++ {
		for n := 0; n < per; n++ {
			switch c := counts[fmt.Sprintf("%s event %d of phone %d", site, n, i)]; {
			case c == 0:
				missing++
			case c > 1:
				doubled++
			}
		}
	}
	if missing > 0 || doubled > 0 {
		t.Fatalf("site %s: of %d events, %d missing and %d stored more than once", site, phones*per, missing, doubled)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		opts Options
		want string // substring of the error; empty: valid
	}{
		{Options{}, ""},
		{Options{URL: "postgres://u:p@db.example/snomprov", Site: "berlin"}, ""},
		{Options{URL: "host=/run/postgresql dbname=snomprov", Site: "hq-1"}, ""},
		{Options{URL: "postgres://u@db/x"}, "site: set a site name"},
		{Options{URL: "postgres://u:secret@db:notaport/x", Site: "a"}, "url: not a PostgreSQL connection string"},
		{Options{URL: "postgres://u@db/x", Site: "no spaces"}, "site: \"no spaces\""},
	}
	for _, tc := range tests {
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("the password shows in %q", err)
		}
	}
}

func TestMigrate(t *testing.T) {
	pg := pgtest.Start(t)
	p := pool(t, pg.URL())
	ctx := context.Background()
	for i := 0; i < 2; i++ { // the second run finds nothing to do
		if err := Migrate(ctx, p); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
	}
	var v, n int
	if err := p.QueryRow(ctx, `SELECT max(version), count(*) FROM snomprov_schema`).Scan(&v, &n); err != nil || v != SchemaVersion || n != SchemaVersion {
		t.Fatalf("schema version %d (%d rows), %v; want %d", v, n, err, SchemaVersion)
	}
	if _, err := p.Exec(ctx, `INSERT INTO snomprov_schema (version) VALUES ($1)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, p); !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("migrate against a newer schema: %v, want ErrSchemaNewer", err)
	}
}

// Version 2 makes the key columns compare as bytes, whatever the
// database's locale: on a database an older snomprov filled under a libc
// locale, the columns and their indexes get collation "C" and every row
// reads back as before.
func TestMigrateKeysCompareAsBytes(t *testing.T) {
	pg := pgtest.Start(t)
	url, err := localeDatabase(pg, "C.UTF-8") // a libc locale every Debian has
	if err != nil {
		t.Fatal(err)
	}
	p := pool(t, url)
	ctx := context.Background()
	if err := migrateTo(ctx, p, 1); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{URL: url, Site: "berlin", StateDir: t.TempDir()}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.pool.Close()
	var recs []record
	t0 := time.Now()
	for i := 0; i < 20; i++ {
		r := record{Key: s.key(), Site: "berlin", obs: obs(i%5, i)}
		r.obs.Event.Time = t0.Add(time.Duration(i) * time.Millisecond)
		recs = append(recs, r)
	}
	if err := s.store(ctx, recs); err != nil {
		t.Fatal(err)
	}
	before, err := Query(ctx, p, Filter{}, 50)
	if err != nil {
		t.Fatal(err)
	}

	if err := Migrate(ctx, p); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{
		"snomprov_phones": {"site", "mac"},
		"snomprov_steps":  {"site", "mac", "step"},
		"snomprov_events": {"site", "event_key", "mac"},
	}
	for table, cols := range keys {
		for _, col := range cols {
			var coll string
			if err := p.QueryRow(ctx, `SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation
				WHERE a.attrelid = $1::regclass AND a.attname = $2`, table, col).Scan(&coll); err != nil || coll != "C" {
				t.Errorf("%s.%s: collation %q, %v; want C", table, col, coll, err)
			}
		}
	}
	// Every text column of every index compares as bytes too.
	rows, err := p.Query(ctx, `SELECT i.indexrelid::regclass::text, coalesce(c.collname, '')
		FROM pg_index i CROSS JOIN LATERAL unnest(i.indcollation::oid[]) AS k(coll)
		LEFT JOIN pg_collation c ON c.oid = k.coll
		WHERE i.indrelid::regclass::text LIKE 'snomprov\_%' AND k.coll <> 0`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var index, coll string
		if err := rows.Scan(&index, &coll); err != nil {
			t.Fatal(err)
		}
		n++
		if coll != "C" {
			t.Errorf("index %s: a text column in collation %q, want C", index, coll)
		}
	}
	if rows.Err() != nil || n != 10 {
		t.Fatalf("%d text index columns, %v; want the 10 of the five indexes", n, rows.Err())
	}
	// p cached Query's statements before the migration (a pool reuses its
	// idle connection): this read meets them stale.
	after, err := Query(ctx, p, Filter{}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 5 {
		t.Fatalf("after the migration:\n%v\nbefore:\n%v", after, before)
	}
	// The rows are still found by their keys: a replay stores nothing new.
	if err := s.store(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var events int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM snomprov_events`).Scan(&events); err != nil || events != len(recs) {
		t.Fatalf("%d events after a replay, %v; want %d", events, err, len(recs))
	}
}

// Two sites write into one database; reads show both and filter by site.
func TestSitesShareOneDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	a, _ := start(t, Options{URL: pg.URL(), Site: "berlin", StateDir: t.TempDir(), Interval: 20 * time.Millisecond})
	b, _ := start(t, Options{URL: pg.URL(), Site: "paris", StateDir: t.TempDir(), Interval: 20 * time.Millisecond})
	for i := 0; i < 3; i++ {
		a.Record(obs(i, 0))
	}
	b.Record(obs(0, 0))
	b.Record(inventory.Observation{MAC: testMAC(9), Firmware: "10.1.73.4", Event: inventory.Event{Step: inventory.StepDHCP, Kind: inventory.KindAck, OK: true, Detail: "event 0 of phone 9"}})
	waitDrained(t, a)
	waitDrained(t, b)

	all := a.Phones()
	var got []string
	for _, p := range all {
		got = append(got, p.Site+"/"+p.MAC.String())
	}
	want := "berlin/000413000000 paris/000413000000 berlin/000413000001 berlin/000413000002 paris/000413000009"
	if strings.Join(got, " ") != want {
		t.Fatalf("phones = %v, want %s", got, want)
	}
	p9 := all[4]
	if p9.Firmware != "10.1.73.4" || !p9.Steps[inventory.StepDHCP].OK || len(p9.Events) != 1 || p9.Events[0].Kind != inventory.KindAck {
		t.Errorf("paris phone 9 = %+v", p9)
	}
	if st, _ := p9.State(time.Now(), 0); st != inventory.StateLeased {
		t.Errorf("state = %s, want leased", st)
	}
	only, err := Query(context.Background(), pool(t, pg.URL()), Filter{Site: "paris"}, 50)
	if err != nil || len(only) != 2 {
		t.Fatalf("site filter: %d phones, %v", len(only), err)
	}
	if p, ok := b.Phone(testMAC(1)); !ok || p.Site != "berlin" {
		t.Errorf("paris reads berlin's phone 1: %+v %v", p, ok)
	}
}

// The database stops while phones are recorded: Record goes on, events are
// buffered (and counted), and all arrive once it is back.
func TestDatabaseAwayThenBack(t *testing.T) {
	pg := pgtest.Start(t)
	s, _ := start(t, Options{URL: pg.URL(), Site: "berlin", StateDir: t.TempDir(), Interval: 20 * time.Millisecond})
	const phones, per = 50, 4
	for i := 0; i < phones; i++ {
		s.Record(obs(i, 0))
	}
	waitDrained(t, s)
	pg.Stop()
	for n := 1; n < per; n++ {
		for i := 0; i < phones; i++ {
			s.Record(obs(i, n))
		}
	}
	// The writer finds the database gone and keeps everything.
	deadline := time.Now().Add(30 * time.Second)
	for st := s.Stats(); st.Connected || st.Buffered != phones*(per-1); st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats with the database stopped: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reads fall back to this site's memory.
	if list := s.Phones(); len(list) != phones || list[0].Site != "berlin" || len(list[0].Events) != per {
		t.Fatalf("reading with the database stopped: %d phones", len(list))
	}
	pg.Start()
	waitDrained(t, s)
	exactlyOnce(t, pool(t, pg.URL()), "berlin", phones, per)
	if st := s.Stats(); st.Dropped != 0 || st.Written != phones*per {
		t.Errorf("stats = %+v", st)
	}
}

// Sends that store records are at least Gap apart: what arrives after one
// waits for the next (here: until Run stops, which sends what is left at
// once), however often the writer is woken meanwhile.
func TestSendGap(t *testing.T) {
	pg := pgtest.Start(t)
	s, stop := start(t, Options{URL: pg.URL(), Site: "gap", StateDir: t.TempDir(), Gap: time.Hour, Interval: 10 * time.Millisecond})
	s.Record(obs(0, 0))
	waitDrained(t, s) // no gap before the first
	for i := 1; i <= 10; i++ {
		s.Record(obs(i, 0))
	}
	time.Sleep(300 * time.Millisecond) // ten Records and some 30 ticks wake the writer
	if st := s.Stats(); st.Written != 1 || st.Buffered != 10 {
		t.Fatalf("within the gap: %+v, want 1 written and 10 waiting", st)
	}
	stop()
	exactlyOnce(t, pool(t, pg.URL()), "gap", 11, 1)
}

// A full buffer drops new events and counts them; it never blocks.
func TestBufferBounded(t *testing.T) {
	s, err := Open(Options{URL: "host=/nonexistent user=x", Site: "a", StateDir: t.TempDir(), MaxBuffered: 10}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		s.Record(obs(i, 0))
	}
	if st := s.Stats(); st.Buffered != 10 || st.Dropped != 15 {
		t.Fatalf("stats = %+v, want 10 buffered, 15 dropped", st)
	}
	// This site's phones are all still known in memory.
	if n := len(s.localPhones()); n != 25 {
		t.Errorf("local phones = %d", n)
	}
}

// The appliance crashes in the middle of writing a batch, before or after
// the commit: a new process replays the spool and every event is stored
// exactly once.
func TestCrashMidBatchExactlyOnce(t *testing.T) {
	pg := pgtest.Start(t)
	p := pool(t, pg.URL())
	for _, stage := range []string{"before-commit", "after-commit"} {
		t.Run(stage, func(t *testing.T) {
			site := "crash-" + stage
			dir := t.TempDir()
			opts := Options{URL: pg.URL(), Site: site, StateDir: dir, BatchSize: 10, Interval: 20 * time.Millisecond}
			s, err := Open(opts, quiet)
			if err != nil {
				t.Fatal(err)
			}
			batches := 0
			s.crash = func(at string, n int) error {
				if at == stage {
					if batches++; batches == 2 {
						return errCrash
					}
				}
				return nil
			}
			const phones, per = 7, 5
			for n := 0; n < per; n++ {
				for i := 0; i < phones; i++ {
					s.Record(obs(i, n))
				}
			}
			// Run stops by itself at the crash; the spool stays as it was.
			if err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if c := eventCounts(t, p); len(c) == 0 || len(c) == phones*per {
				t.Fatalf("%d events stored before the crash: the crash was not mid-way", len(c))
			}
			if b, err := os.ReadFile(filepath.Join(dir, SpoolName)); err != nil || strings.Count(string(b), "\n") != phones*per {
				t.Fatalf("spool after the crash: %d lines, %v", strings.Count(string(b), "\n"), err)
			}
			s2, _ := start(t, opts)
			waitDrained(t, s2)
			exactlyOnce(t, p, site, phones, per)
			if b, _ := os.ReadFile(filepath.Join(dir, SpoolName)); len(b) != 0 {
				t.Errorf("spool not emptied once everything was stored: %d bytes", len(b))
			}
		})
	}
}

// spooled opens a store (not run) and puts n phones' events in its spool.
func spooled(t *testing.T, opts Options, n int) *Store {
	t.Helper()
	s, err := Open(opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		s.Record(obs(i, 0))
	}
	if _, err := s.spoolQueued(); err != nil {
		t.Fatal(err)
	}
	return s
}

// A torn last line (a crash while appending to the spool) is skipped; the
// rest is replayed.
func TestSpoolTornLine(t *testing.T) {
	dir := t.TempDir()
	opts := Options{URL: "host=/nonexistent user=x", Site: "a", StateDir: dir}
	s := spooled(t, opts, 3)
	s.spool.Close()
	f, _ := os.OpenFile(filepath.Join(dir, SpoolName), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"k":"abc-4","s":"a","o":{"mac":"0004`)
	f.Close()
	s2, err := Open(opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if st := s2.Stats(); st.Buffered != 3 {
		t.Fatalf("replayed %d events, want 3", st.Buffered)
	}
	if n := len(s2.localPhones()); n != 3 {
		t.Errorf("replayed phones in memory: %d", n)
	}
}

func TestMaskURL(t *testing.T) {
	for _, tc := range []struct{ url, text, want string }{
		{"postgres://snom:s3cret@db/x", "failed to connect to user=snom password=s3cret", "failed to connect to user=snom password=" + redact.Mask},
		{"host=db password=p%40ss user=u", "password=p%40ss", "password=" + redact.Mask},
		{"postgres://snom:p%40ss@db/x", "postgres://snom:p%40ss@db/x (p@ss)", "postgres://snom:" + redact.Mask + "@db/x (" + redact.Mask + ")"},
		{"postgres://u@db/x", "no password here", "no password here"},
	} {
		if got := MaskURL(tc.text, tc.url); got != tc.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

// A connection string that does not parse is reported without quoting it
// back: no password, and no second mask beside redact's.
func TestValidateURLMasked(t *testing.T) {
	for _, url := range []string{
		"postgres://snom:s3cret@db:x/",
		"postgres://snom:s3cret@db/x?sslmode=bogus",
		"host=db password=s3cret sslmode=bogus",
		"host=db password='s3cret",
	} {
		err := Options{URL: url, Site: "a"}.Validate()
		if err == nil {
			t.Errorf("%q: no error", url)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "xxxxx") || !strings.Contains(msg, "not a PostgreSQL connection string: ") {
			t.Errorf("%q: %s", url, msg)
		}
	}
}

// A spool that does not empty (stored records behind unsent ones) is
// compacted to the unsent records; a restart replays only those.
func TestSpoolCompacted(t *testing.T) {
	opts := Options{URL: "host=/nonexistent user=x", Site: "a", StateDir: t.TempDir(), MaxBuffered: 4}
	s := spooled(t, opts, 4)
	// As if the first three had been stored and the database then failed.
	s.unsent.pop(3)
	s.spoolLines += 2 // and more stored ones before them
	if err := s.send(context.Background()); err == nil {
		t.Fatal("send to a missing database succeeded")
	}
	s.spool.Close()
	s2, err := Open(opts, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if f := s2.unsent.front(10); s2.unsent.Len() != 1 || f[0].obs.MAC != testMAC(3) {
		t.Fatalf("after compaction the spool holds %d records", s2.unsent.Len())
	}
}

func TestReadSpool(t *testing.T) {
	good := `{"k":"b-1","s":"a","o":{"mac":"000413A11FA7","event":{"time":"2026-12-07T10:00:00Z","step":"dhcp","kind":"ACK","ok":true,"detail":"x"}}}`
	for _, tc := range []struct {
		name          string
		text          string
		recs, skipped int
	}{
		{"empty", "", 0, 0},
		{"one", good + "\n", 1, 0},
		{"torn last line", good + "\n" + good[:40], 1, 1},
		{"no newline at the end", good, 1, 0},
		{"unknown kind", strings.Replace(good, "ACK", "BOGUS", 1) + "\n" + good + "\n", 1, 1},
		{"no key", strings.Replace(good, `"k":"b-1"`, `"k":""`, 1) + "\n", 0, 1},
		{"no MAC", strings.Replace(good, "000413A11FA7", "000000000000", 1) + "\n", 0, 1},
		{"overlong line", `{"k":"` + strings.Repeat("x", 200<<10) + "\"}\n" + good + "\n", 1, 1},
		{"blank lines", "\n\n" + good + "\n\n", 1, 0},
	} {
		recs, skipped, err := readSpool(strings.NewReader(tc.text))
		if err != nil || len(recs) != tc.recs || skipped != tc.skipped {
			t.Errorf("%s: %d records, %d skipped, %v; want %d, %d", tc.name, len(recs), skipped, err, tc.recs, tc.skipped)
		}
	}
}

func FuzzReadSpool(f *testing.F) {
	f.Add(`{"k":"b-1","s":"a","o":{"mac":"000413A11FA7","event":{"step":"dhcp","kind":"ACK","ok":true}}}` + "\n")
	f.Add("{\n}\n\x00")
	f.Fuzz(func(t *testing.T, text string) {
		recs, skipped, err := readSpool(strings.NewReader(text))
		if err != nil {
			t.Fatalf("a strings.Reader cannot fail: %v", err)
		}
		if len(recs)+skipped > strings.Count(text, "\n")+1 {
			t.Fatalf("%d records and %d skipped from %d lines", len(recs), skipped, strings.Count(text, "\n")+1)
		}
		for _, r := range recs {
			if r.Key == "" || r.obs.MAC.IsZero() {
				t.Fatalf("record without key or MAC: %+v", r)
			}
		}
	})
}

// TestActionIsNotSeen: as in the file store, an action event is stored in
// the timeline but does not move the phone's last_seen, also when it is
// the only event of its batch.
func TestActionIsNotSeen(t *testing.T) {
	pg := pgtest.Start(t)
	s, _ := start(t, Options{URL: pg.URL(), Site: "berlin", StateDir: t.TempDir(), Interval: 20 * time.Millisecond})
	seen := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	o := obs(1, 0)
	o.Event.Time = seen
	s.Record(o)
	waitDrained(t, s)
	s.Record(inventory.Observation{MAC: testMAC(1), Event: inventory.Event{Time: seen.Add(48 * time.Hour), Step: inventory.StepAction,
		Kind: inventory.KindResync, Detail: "no answer"}})
	waitDrained(t, s)
	got, err := Query(context.Background(), pool(t, pg.URL()), Filter{Site: "berlin"}, 50)
	if err != nil || len(got) != 1 {
		t.Fatalf("%d phones, %v", len(got), err)
	}
	p := got[0]
	if !p.LastSeen.Equal(seen) || len(p.Events) != 2 || p.Events[1].Kind != inventory.KindResync {
		t.Errorf("phone = %+v", p)
	}
}

// The database's view of the phones is the memory store's, over batches
// that mix phones, identity fields said and unsaid, steps with several
// events (ties in time included), events of no step, a phone seen only by
// an installer's action, and text PostgreSQL cannot hold as it is; and
// storing the same lines once more changes nothing.
func TestDatabaseMatchesMemory(t *testing.T) {
	pg := pgtest.Start(t)
	s, err := Open(Options{URL: pg.URL(), Site: "berlin", StateDir: t.TempDir(), BatchSize: 7, Interval: 20 * time.Millisecond, Gap: time.Millisecond}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	var sent []record // every record the database took
	s.crash = func(stage string, n int) error {
		if stage == "after-commit" {
			s.spoolMu.Lock()
			sent = append(sent, s.unsent.front(n)...)
			s.spoolMu.Unlock()
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	base := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	models := []string{"", "snomD785", "snomD717"}
	steps := []inventory.Step{inventory.StepDHCP, inventory.StepGeneral, "", inventory.StepPhone}
	kinds := map[inventory.Step]inventory.Kind{inventory.StepDHCP: inventory.KindAck, inventory.StepGeneral: inventory.HTTPKind(200),
		inventory.StepPhone: inventory.HTTPKind(404)}
	for i := 0; i < 64; i++ {
		st := steps[(i/8)%len(steps)]
		o := inventory.Observation{MAC: testMAC(i % 4), Model: models[i%3], Hostname: []string{"", "desk-" + fmt.Sprint(i)}[i%2],
			Event: inventory.Event{Time: base.Add(time.Duration(i/8) * time.Millisecond), // i and i+4: one phone, one step, one time
				Step: st, Kind: kinds[st], OK: i%5 != 0, Detail: fmt.Sprintf("event %d", i)}}
		if i%6 == 0 {
			o.Firmware = fmt.Sprintf("10.1.%d.0", i)
		}
		if i%7 == 0 {
			o.IP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		}
		if i%16 == 3 {
			o.FirmwareTarget = "10.1.73.4"
		}
		s.Record(o)
		if i%10 == 9 {
			waitDrained(t, s) // batches end at different places
		}
	}
	s.Record(inventory.Observation{MAC: testMAC(9), Hostname: "nul\x00here", Event: inventory.Event{Time: base, Step: inventory.StepAction,
		Kind: inventory.KindResync, Detail: "bad \xff utf-8 and a \x00"}})
	waitDrained(t, s)

	db := pool(t, pg.URL())
	got, err := Query(context.Background(), db, Filter{Site: "berlin"}, 50)
	if err != nil {
		t.Fatal(err)
	}
	want := s.localPhones()
	if len(got) != len(want) {
		t.Fatalf("database has %d phones, memory %d", len(got), len(want))
	}
	for i := range want {
		if d := phoneDiff(got[i], want[i]); d != "" {
			t.Errorf("phone %s: %s", want[i].MAC, d)
		}
	}
	if h := got[len(got)-1].Hostname; h != "nul\uFFFDhere" {
		t.Errorf("hostname with NUL stored as %q", h)
	}

	// A replay of everything, in one batch, as after a crash.
	if err := s.store(context.Background(), sent); err != nil {
		t.Fatal(err)
	}
	again, err := Query(context.Background(), db, Filter{Site: "berlin"}, 50)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := phoneDiff(again[i], got[i]); d != "" {
			t.Errorf("the replay changed phone %s: %s", got[i].MAC, d)
		}
	}
}

// phoneDiff says how two phones differ, times compared as instants.
func phoneDiff(a, b inventory.Phone) string {
	var d []string
	if a.MAC != b.MAC || a.Site != b.Site || a.Model != b.Model || a.Firmware != b.Firmware || a.Hostname != b.Hostname ||
		a.IP != b.IP || a.FirmwareTarget != b.FirmwareTarget {
		d = append(d, fmt.Sprintf("identity %s/%s/%q/%q/%q/%q/%q vs %s/%s/%q/%q/%q/%q/%q", a.MAC, a.Site, a.Model, a.Firmware, a.Hostname, a.IP,
			a.FirmwareTarget, b.MAC, b.Site, b.Model, b.Firmware, b.Hostname, b.IP, b.FirmwareTarget))
	}
	if !a.FirstSeen.Equal(b.FirstSeen) || !a.LastSeen.Equal(b.LastSeen) {
		d = append(d, fmt.Sprintf("seen %v..%v vs %v..%v", a.FirstSeen, a.LastSeen, b.FirstSeen, b.LastSeen))
	}
	if len(a.Steps) != len(b.Steps) {
		d = append(d, fmt.Sprintf("%d steps vs %d", len(a.Steps), len(b.Steps)))
	}
	for k, ra := range a.Steps {
		if rb := b.Steps[k]; !ra.Time.Equal(rb.Time) || ra.OK != rb.OK || ra.Detail != rb.Detail {
			d = append(d, fmt.Sprintf("step %s: %+v vs %+v", k, ra, rb))
		}
	}
	if len(a.Events) != len(b.Events) {
		d = append(d, fmt.Sprintf("%d events vs %d", len(a.Events), len(b.Events)))
	} else {
		for i, ea := range a.Events {
			eb := b.Events[i]
			if !ea.Time.Equal(eb.Time) || ea.Step != eb.Step || ea.Kind != eb.Kind || ea.OK != eb.OK || ea.Detail != eb.Detail || ea.IP != eb.IP {
				d = append(d, fmt.Sprintf("event %d: %+v vs %+v", i, ea, eb))
			}
		}
	}
	return strings.Join(d, "; ")
}

// Records arriving faster than SpoolGather are written together, at most
// one write per SpoolGather; a lone record is written by itself; and every
// record reaches the spool.
func TestSpoolerGathersWhenBusy(t *testing.T) {
	dir := t.TempDir()
	s, _ := start(t, Options{URL: "host=/nonexistent user=x", Site: "a", StateDir: dir})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %s", what)
			}
		}
	}
	time.Sleep(2 * SpoolGather)
	s.Record(obs(0, 0))
	waitFor("the lone record written", func() bool { return s.spoolWrites.Load() == 1 })

	// A storm: a record every 100 µs, paced by spinning, since a sleep that
	// short lasts a millisecond or more.
	const n = 400
	t0 := time.Now()
	for i := 1; i <= n; i++ {
		s.Record(obs(i, 0))
		for next := t0.Add(time.Duration(i) * 100 * time.Microsecond); time.Now().Before(next); {
		}
	}
	elapsed := time.Since(t0)
	waitFor("every record in the spool", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, SpoolName))
		return strings.Count(string(b), "\n") == n+1
	})
	// Written as they came, they would take a write per few records.
	if w, most := s.spoolWrites.Load()-1, uint64(elapsed/SpoolGather)+2; w > most {
		t.Errorf("%d records over %v took %d writes, want at most %d", n, elapsed.Round(time.Millisecond), w, most)
	}
}

// An event the database refuses (here for a constraint an administrator
// added) is dropped and counted; the events of its batch and those after
// it are stored as usual, instead of waiting behind it for ever. When the
// database refuses every event (the constraint now fits none), that is
// the table, not the events: they wait, none dropped, until it is fixed.
func TestRefusedEventDoesNotHoldTheRest(t *testing.T) {
	pg := pgtest.Start(t)
	s, _ := start(t, Options{URL: pg.URL(), Site: "berlin", StateDir: t.TempDir(), Interval: 20 * time.Millisecond, Gap: 300 * time.Millisecond})
	s.Record(obs(99, 0)) // the first send: connected, migrated, and the next send 300 ms away
	waitDrained(t, s)
	db := pool(t, pg.URL())
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Exec(context.Background(), sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`ALTER TABLE snomprov_events ADD CONSTRAINT no_poison CHECK (detail NOT LIKE 'poison%')`)
	for i := 0; i < 10; i++ { // within one Gap: one batch
		o := obs(i, 0)
		if i == 4 {
			o.Event.Detail = "poison"
		}
		s.Record(o)
	}
	waitDrained(t, s)
	s.Record(obs(20, 0))
	waitDrained(t, s)
	counts := eventCounts(t, db)
	for _, i := range []int{0, 1, 2, 3, 5, 6, 7, 8, 9, 20} {
		if c := counts[fmt.Sprintf("berlin event 0 of phone %d", i)]; c != 1 {
			t.Errorf("phone %d: %d events stored", i, c)
		}
	}
	if st := s.Stats(); st.Dropped != 1 || st.Written != 11 {
		t.Errorf("stats %+v, want 1 dropped and 11 written", st)
	}

	exec(`ALTER TABLE snomprov_events ADD CONSTRAINT none_fit CHECK (detail = 'never') NOT VALID`)
	for i := 30; i < 60; i++ {
		s.Record(obs(i, 0))
	}
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Connected; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed send within 10 s")
		}
	}
	if st := s.Stats(); st.Dropped != 1 || st.Buffered != 30 {
		t.Fatalf("every event refused: stats %+v, want them buffered and none more dropped", st)
	}
	exec(`ALTER TABLE snomprov_events DROP CONSTRAINT none_fit`)
	waitDrained(t, s)
	if st := s.Stats(); st.Dropped != 1 || st.Written != 41 {
		t.Errorf("after the fix: stats %+v, want 41 written", st)
	}
}
