// Package pgstore is the shared inventory: phones and their events from
// every appliance (each a "site") in one PostgreSQL database.
//
// Phones never wait for the database. Record only appends to a bounded
// in-memory queue; a spooler goroutine writes what it takes from the queue
// to a spool file in the state directory at once, or within SpoolGather
// while busy (in the kernel's page cache it survives the process being
// killed), and a sender sends its records to PostgreSQL in transactions,
// at most once per Gap (both run under Run); the spool is fsynced when the
// database did not take them, so a power cut loses at most the events of
// the last Gap, or of the last 2 s while the database is away. While the
// database is slow or down, events stay in the spool (bounded: past MaxBuffered new events are dropped, and
// counted) and are written when it is back. Every event carries a key made
// of a random per-process boot id and a sequence number; the events table's
// primary key (site, key) with ON CONFLICT DO NOTHING makes a replay of the
// spool after a crash mid-batch store each event exactly once.
//
// The same observations also go to an in-memory inventory.Store of this
// site, which answers CountStates (metrics, the systemd status line) and the
// reads while the database cannot.
package pgstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snomprov/snomprov/internal/atomicfile"
	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/metrics"
	"github.com/snomprov/snomprov/phone"
)

// Options configure the store. URL and Site come from [inventory]; the
// rest have defaults.
type Options struct {
	URL      string // postgres://user@host/db?... or a key=value string
	Site     string // this appliance's site name
	StateDir string // where the spool file lives

	MaxBuffered int           // events held while the database is away; default 100000
	MaxEvents   int           // events per phone read back; default 50
	BatchSize   int           // events per transaction; default 1000
	Interval    time.Duration // how often the writer wakes without new events; default 1s
	Gap         time.Duration // the least time between two sends to the database; default 250ms
	ReadTimeout time.Duration // a read (status page, API) waits at most this; default 3s
}

// siteName is what a site may be called: it shows in URLs and columns.
var siteName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks the options [inventory] sets, as field errors keyed
// "url" and "site".
func (o Options) Validate() error {
	var es field.Errors
	if o.URL != "" {
		if _, err := pgxpool.ParseConfig(o.URL); err != nil {
			es.Add("url", "not a PostgreSQL connection string: %v", maskErr(err, o.URL))
		}
		if o.Site == "" {
			es.Add("site", "set a site name (e.g. the office: \"berlin\") when the inventory is shared in PostgreSQL")
		}
	}
	if o.Site != "" && !siteName.MatchString(o.Site) {
		es.Add("site", "%q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", o.Site)
	}
	return es.Err()
}

// maskErr is err's text with the password of url hidden. A parse error
// of pgconn quotes the whole connection string back, masked its own way
// ("xxxxx", best effort); the key the error is reported under already
// says where the string is, so only pgconn's reason is kept, and one mask
// (redact's) is all anyone sees.
func maskErr(err error, url string) string {
	text := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		const quoted = "cannot parse `"
		if i := strings.Index(text, quoted); i >= 0 {
			if j := strings.Index(text[i+len(quoted):], "`: "); j >= 0 {
				text = text[:i] + text[i+len(quoted)+j+3:]
			}
		}
	}
	return MaskURL(text, url)
}

// DefaultGap is the least time between two sends. During a boot storm
// events arrive by the thousand per second; sent as they come, each
// handful would cost a transaction and a commit on CPUs the phones' DHCP,
// PnP and HTTP answers need. A gap lets a storm's events gather into
// batches of up to BatchSize while they wait in the spool, already
// written, so a killed process loses nothing more for it.
const DefaultGap = 250 * time.Millisecond

// SpoolName is the spool file inside the state directory.
const SpoolName = "inventory-spool.jsonl"

// Store is the PostgreSQL inventory. It is safe for concurrent use.
type Store struct {
	opts  Options
	log   *slog.Logger
	local *inventory.Store
	pool  *pgxpool.Pool
	boot  string // random per process: the first half of every event key
	seq   atomic.Uint64

	mu       sync.Mutex // after spoolMu when both are held
	queue    []record   // Record appends, the spooler takes
	spare    []record   // the spooler's last batch, emptied: the next queue
	pending  int        // records in the spool not yet stored
	wake     chan struct{}
	sendWake chan struct{} // the spooler tells the sender

	spoolMu    sync.Mutex
	spool      *os.File
	spoolW     *bufio.Writer // over spool, kept: the spooler runs once per wake
	spoolLines int
	unsent     recordQueue // the spool's records not yet stored

	dropped     atomic.Uint64
	written     atomic.Uint64
	connected   atomic.Bool
	spoolWrites atomic.Uint64 // for tests: how many times the spooler wrote
	reported    atomic.Int32  // the state last logged: 0 none yet, 1 reachable, 2 unavailable
	lastDropLg  atomic.Int64  // unix seconds of the last "dropped" log line

	// hooks for tests: called around each transaction's commit. An error
	// from crash stops the writer as a crash would: nothing after it runs.
	crash func(stage string, n int) error
}

// errCrash is what a crash hook returns to stop Run mid-batch.
var errCrash = errors.New("simulated crash")

// record is one observation with its key.
type record struct {
	Key  string
	Site string
	obs  inventory.Observation
}

// spoolLine is a record as the spool keeps it.
type spoolLine struct {
	Key  string          `json:"k"`
	Site string          `json:"s"`
	Obs  observationJSON `json:"o"`
}

func (r *record) line() spoolLine {
	o := r.obs
	ip := ""
	if o.IP.IsValid() {
		ip = o.IP.String()
	}
	return spoolLine{Key: r.Key, Site: r.Site, Obs: observationJSON{MAC: o.MAC, Model: o.Model, Firmware: o.Firmware,
		Hostname: o.Hostname, IP: ip, FirmwareTarget: o.FirmwareTarget, Event: o.Event}}
}

type observationJSON struct {
	MAC            phone.MAC       `json:"mac"`
	Model          string          `json:"model,omitempty"`
	Firmware       string          `json:"firmware,omitempty"`
	Hostname       string          `json:"hostname,omitempty"`
	IP             string          `json:"ip,omitempty"`
	FirmwareTarget string          `json:"target,omitempty"`
	Event          inventory.Event `json:"event"`
}

// Open prepares the store and replays the spool a previous run left. It
// does not connect: Run does, and retries for as long as it runs.
func Open(opts Options, log *slog.Logger) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = 100000
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 50
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Gap <= 0 {
		opts.Gap = DefaultGap
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 3 * time.Second
	}
	if opts.StateDir == "" {
		return nil, errors.New("no state directory for the PostgreSQL spool: set [server] state_dir")
	}
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %s", maskErr(err, opts.URL))
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "snomprov " + opts.Site
	// pgxpool.NewWithConfig connects lazily: the database may be down.
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, errors.New(maskErr(err, opts.URL))
	}
	local, _ := inventory.Open("", inventory.Options{MaxEvents: opts.MaxEvents})
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Store{opts: opts, log: log, local: local, pool: pool, boot: hex.EncodeToString(b[:]),
		wake: make(chan struct{}, 1), sendWake: make(chan struct{}, 1)}
	if err := os.MkdirAll(opts.StateDir, 0o750); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.openSpool(); err != nil {
		pool.Close()
		return nil, err
	}
	s.unsent.each(func(r *record) { s.local.Record(r.obs) })
	return s, nil
}

// openSpool reads what a previous run left in the spool (a torn last line
// of a crash is skipped) and opens it for appending.
func (s *Store) openSpool() error {
	path := filepath.Join(s.opts.StateDir, SpoolName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	recs, skipped, err := readSpool(f)
	s.unsent = newRecordQueue(s.opts.BatchSize)
	s.unsent.push(recs)
	if err != nil {
		f.Close()
		return fmt.Errorf("spool %s: %w", path, err)
	}
	if skipped > 0 {
		s.log.Warn("inventory spool: skipped unreadable lines (a crash while writing, or damage)", "file", path, "lines", skipped)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.spool, s.spoolLines = f, s.unsent.Len()
	s.pending = s.unsent.Len()
	if n := s.unsent.Len(); n > 0 {
		s.log.Info("inventory: events from the previous run still to be written to PostgreSQL", "events", n)
	}
	return nil
}

// maxSpoolLine bounds one spool line; a longer one is damage, skipped.
const maxSpoolLine = 64 << 10

// readSpool reads the spool's records. A line that is not a record (torn
// by a crash, too long, damaged) is skipped and counted; only a read error
// is an error.
func readSpool(r io.Reader) (recs []record, skipped int, err error) {
	br := bufio.NewReaderSize(r, maxSpoolLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			skipped++
			for errors.Is(err, bufio.ErrBufferFull) { // the rest of the long line
				_, err = br.ReadSlice('\n')
			}
			if err == io.EOF {
				return recs, skipped, nil
			}
			if err != nil {
				return recs, skipped, err
			}
			continue
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var l spoolLine
			if jerr := json.Unmarshal(line, &l); jerr != nil || l.Key == "" || l.Obs.MAC.IsZero() {
				skipped++
			} else {
				recs = append(recs, record{Key: l.Key, Site: l.Site, obs: l.Obs.observation()})
			}
		}
		if err == io.EOF {
			return recs, skipped, nil
		}
		if err != nil {
			return recs, skipped, err
		}
	}
}

func (o observationJSON) observation() inventory.Observation {
	ip, _ := netip.ParseAddr(o.IP)
	obs := inventory.Observation{MAC: o.MAC, Model: o.Model, Firmware: o.Firmware, Hostname: o.Hostname, IP: ip,
		FirmwareTarget: o.FirmwareTarget, Event: o.Event}
	storableText(&obs) // a spool an older build wrote
	return obs
}

// storableText replaces what PostgreSQL's text cannot hold, NUL and
// invalid UTF-8, with U+FFFD in o's strings: one such string would fail
// its whole batch again at every try.
func storableText(o *inventory.Observation) {
	for _, f := range []*string{&o.Model, &o.Firmware, &o.Hostname, &o.FirmwareTarget, &o.Event.Detail, &o.Event.IP} {
		if strings.IndexByte(*f, 0) >= 0 || !utf8.ValidString(*f) {
			*f = strings.ReplaceAll(strings.ToValidUTF8(*f, "\uFFFD"), "\x00", "\uFFFD")
		}
	}
}

// Record queues an observation; it never waits for the disk or the
// database. Past MaxBuffered queued and unsent events it drops, and counts.
func (s *Store) Record(o inventory.Observation) {
	if o.MAC.IsZero() {
		return
	}
	if o.Event.Time.IsZero() {
		o.Event.Time = time.Now()
	}
	if o.IP.IsValid() && o.Event.IP == "" {
		o.Event.IP = o.IP.String()
	}
	storableText(&o) // before the memory store sees it, so both show the same text
	s.local.Record(o)
	s.mu.Lock()
	if len(s.queue)+s.pending >= s.opts.MaxBuffered {
		s.mu.Unlock()
		s.drop()
		return
	}
	s.queue = append(s.queue, record{Key: s.key(), Site: s.opts.Site, obs: o})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) key() string {
	var b [48]byte
	n := copy(b[:], s.boot)
	b[n] = '-'
	return string(appendUint(b[:n+1], s.seq.Add(1)))
}

func appendUint(b []byte, v uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

func (s *Store) drop() {
	n := s.dropped.Add(1)
	now := time.Now().Unix()
	if last := s.lastDropLg.Load(); now-last >= 10 && s.lastDropLg.CompareAndSwap(last, now) {
		s.log.Warn("inventory: buffer full while PostgreSQL is away, dropping events",
			"max_buffered", s.opts.MaxBuffered, "dropped_total", n)
	}
}

// Stats returns what /metrics shows of the store.
func (s *Store) Stats() metrics.BufferStats {
	s.mu.Lock()
	n := len(s.queue) + s.pending
	s.mu.Unlock()
	return metrics.BufferStats{Buffered: n, Dropped: s.dropped.Load(), Written: s.written.Load(), Connected: s.connected.Load()}
}

// CountStates counts this site's phones by state (from memory).
func (s *Store) CountStates(now time.Time, staleAfter time.Duration) map[inventory.State]int {
	return s.local.CountStates(now, staleAfter)
}

// Run writes queued events until ctx ends, then once more within a short
// bound, and closes the store. It returns nil: a database that is away is
// logged and retried, never a reason to stop the appliance.
//
// Two goroutines: the spooler writes what Record queued into the spool as
// soon as it arrives, without waiting for the disk (a killed process loses
// only what was not yet written; a power cut what was not yet fsynced),
// and the sender, this one, stores its records in PostgreSQL, as fast as
// the database takes them but at most once per Gap, and fsyncs the spool
// when the database did not take them.
func (s *Store) Run(ctx context.Context) error {
	defer s.pool.Close()
	sctx, stopSpooler := context.WithCancel(ctx)
	spooled := make(chan struct{})
	go func() { s.spooler(sctx); close(spooled) }()
	defer func() {
		stopSpooler()
		<-spooled
		s.spool.Close()
	}()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	migrated := false
	backoff := time.Time{}
	var notBefore time.Time  // Gap after the last send that stored records
	var gap <-chan time.Time // fires at notBefore while a send waits for it
	for {
		select {
		case <-ctx.Done():
			<-spooled // the spooler's last drain
			// One last try, bounded, so a stop does not hang on a dead
			// database; what is left stays in the spool for the next start.
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if migrated || s.migrateLogged(fctx) == nil {
				_ = s.send(fctx)
			}
			return nil
		case <-s.sendWake:
		case <-t.C:
		case <-gap:
			gap = nil
		}
		if time.Now().Before(backoff) {
			continue
		}
		if wait := time.Until(notBefore); wait > 0 {
			if gap == nil {
				gap = time.After(wait)
			}
			continue
		}
		if !migrated {
			if err := s.migrateLogged(ctx); err != nil {
				backoff = time.Now().Add(2 * time.Second)
				continue
			}
			migrated = true
		}
		written := s.written.Load()
		if err := s.send(ctx); err != nil {
			if errors.Is(err, errCrash) {
				return nil
			}
			backoff = time.Now().Add(2 * time.Second)
		}
		if s.written.Load() != written { // a send with nothing to store costs nothing
			notBefore = time.Now().Add(s.opts.Gap)
		}
	}
}

// SpoolGather is how long a busy spooler lets records gather before it
// writes them. In a storm every request records an event and wakes it;
// writing each handful at once cost a system call per two or three events
// (a tenth of the appliance's CPU in BenchmarkHTTPStormInventory). Waiting
// only while busy, as a group commit does, keeps a lone event's write
// immediate, and widens what a killed process can lose to the events of
// one such wait.
const SpoolGather = time.Millisecond

// spooler moves queued records into the spool until ctx ends, then once
// more; at most one write per SpoolGather.
func (s *Store) spooler(ctx context.Context) {
	var lastWrite time.Time
	gather := time.NewTimer(0)
	<-gather.C
	for {
		done := false
		select {
		case <-ctx.Done():
			done = true
		case <-s.wake:
		}
		if wait := SpoolGather - time.Since(lastWrite); !done && wait > 0 {
			gather.Reset(wait)
			select {
			case <-ctx.Done():
				done = true
				gather.Stop()
			case <-gather.C:
			}
		}
		n, err := s.spoolQueued()
		if err != nil {
			s.log.Error("inventory: writing the spool", "err", err)
		}
		if n > 0 {
			lastWrite = time.Now()
			s.spoolWrites.Add(1)
			select {
			case s.sendWake <- struct{}{}:
			default:
			}
		}
		if done {
			return
		}
	}
}

func (s *Store) migrateLogged(ctx context.Context) error {
	err := Migrate(ctx, s.pool)
	s.setConnected(err, "migrating the schema")
	return err
}

// setConnected records whether the database answered, and logs each
// change between reachable and unavailable once.
func (s *Store) setConnected(err error, what string) {
	s.connected.Store(err == nil)
	if err == nil {
		if s.reported.Swap(1) != 1 {
			s.log.Info("inventory: PostgreSQL reachable", "site", s.opts.Site)
		}
		return
	}
	if s.reported.Swap(2) != 2 {
		s.log.Warn("inventory: PostgreSQL unavailable, buffering events", "while", what,
			"err", MaskURL(err.Error(), s.opts.URL), "buffered", s.Stats().Buffered)
	}
}

// spoolQueued moves the queue into the spool file and the unsent list,
// and returns how many records it moved.
func (s *Store) spoolQueued() (int, error) {
	s.spoolMu.Lock()
	defer s.spoolMu.Unlock()
	s.mu.Lock()
	batch := s.queue
	s.queue, s.spare = s.spare, nil
	s.pending += len(batch)
	s.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	// The two buffers take turns: Record fills one while the records of
	// the other are copied out, so a storm does not grow a new one each time.
	defer func() {
		clear(batch)
		s.mu.Lock()
		s.spare = batch[:0]
		s.mu.Unlock()
	}()
	s.unsent.push(batch)
	s.spoolLines += len(batch)
	if s.spoolW == nil {
		s.spoolW = bufio.NewWriterSize(s.spool, 64<<10)
	}
	s.spoolW.Reset(s.spool) // after a compaction, the new file
	enc := json.NewEncoder(s.spoolW)
	for i := range batch {
		if err := enc.Encode(batch[i].line()); err != nil {
			return len(batch), err
		}
	}
	return len(batch), s.spoolW.Flush()
}

// send stores the unsent records, BatchSize per transaction, and empties
// the spool once all are stored. Only the sender calls it; the spooler may
// append to unsent meanwhile.
func (s *Store) send(ctx context.Context) error {
	for {
		s.spoolMu.Lock()
		if s.spoolLines-s.unsent.Len() > s.opts.MaxBuffered {
			// Stored records pile up in a spool that has not emptied for
			// a while (a flapping or slow database): rewrite it with the
			// rest.
			if err := s.compactSpool(); err != nil {
				s.log.Error("inventory: compacting the spool", "err", err)
			}
		}
		// The spooler only appends: these stay as they are.
		batch := s.unsent.front(s.opts.BatchSize)
		n := len(batch)
		if n == 0 {
			err := s.emptySpool()
			s.spoolMu.Unlock()
			return err
		}
		spool := s.spool
		s.spoolMu.Unlock()

		err := s.storeBounded(ctx, batch)
		rejected := 0
		if rejection(err) && n > 1 {
			rejected, err = s.storeEach(ctx, batch, err)
		}
		if errors.Is(err, errCrash) {
			return err
		}
		s.setConnected(err, "writing events")
		if err != nil {
			// They wait for the database: on disk now, so that a power
			// cut does not take them (while the database stays away, the
			// records spooled since are synced at the next try, 2 s on).
			// Records the database took need no fsync of their own.
			if serr := spool.Sync(); serr != nil {
				s.log.Error("inventory: syncing the spool", "err", serr)
			}
			return err
		}
		if s.crash != nil {
			if err := s.crash("after-commit", n); err != nil {
				return err
			}
		}
		s.spoolMu.Lock()
		s.unsent.pop(n)
		s.spoolMu.Unlock()
		s.written.Add(uint64(n - rejected))
		s.mu.Lock()
		s.pending -= n
		s.mu.Unlock()
	}
}

// rejection reports whether the database refused a transaction for what
// its rows hold (a data exception, a constraint it does not meet, a value
// past a limit) rather than for being away or misconfigured: retrying the
// same rows would fail the same way for ever.
func rejection(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54": // data exception, integrity constraint violation, program limit exceeded
		return true
	}
	return false
}

// systemicAfter is how many events storeEach lets the database refuse,
// with none taken, before it decides that the table refuses them all.
const systemicAfter = 16

// storeEach stores recs one transaction each, after the database refused
// them together (batchErr) for what they hold. When it takes some of them,
// those it refuses alone are dropped, counted and logged, so that they
// cannot hold back every event behind them. When it takes none (the first
// systemicAfter, or all of fewer), the cause is the table rather than the
// events, a changed schema say, and batchErr is returned: the events wait
// as while the database is away. Any other error also stops it, and the
// whole batch is tried again later (what was stored is skipped then by its
// key, and nothing was counted yet).
func (s *Store) storeEach(ctx context.Context, recs []record, batchErr error) (rejected int, err error) {
	type refusal struct {
		r   *record
		err error
	}
	var refused []refusal
	stored := 0
	for i := range recs {
		switch err := s.storeBounded(ctx, recs[i:i+1]); {
		case err == nil:
			stored++
		case !rejection(err):
			return 0, err
		default:
			refused = append(refused, refusal{&recs[i], err})
			if stored == 0 && len(refused) >= systemicAfter {
				return 0, batchErr
			}
		}
	}
	if stored == 0 {
		return 0, batchErr
	}
	for _, f := range refused {
		s.dropped.Add(1)
		s.log.Error("inventory: PostgreSQL refuses an event, dropped", "mac", f.r.obs.MAC.String(), "key", f.r.Key,
			"step", f.r.obs.Event.Step, "err", MaskURL(f.err.Error(), s.opts.URL))
	}
	return len(refused), nil
}

// storeTimeout bounds one transaction of send's, so that a database that
// stops answering mid-way is given up on and tried again.
const storeTimeout = 10 * time.Second

// storeBounded is store within storeTimeout.
func (s *Store) storeBounded(ctx context.Context, recs []record) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return s.store(ctx, recs)
}

// emptySpool truncates the spool once everything in it is stored; spoolMu
// is held.
func (s *Store) emptySpool() error {
	if s.spoolLines == 0 {
		return nil
	}
	if err := s.spool.Truncate(0); err != nil {
		return err
	}
	if _, err := s.spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// No fsync: if a power cut undoes the truncation, the next start
	// replays records the database has, and their keys skip them.
	s.spoolLines = 0
	return nil
}

// compactSpool rewrites the spool with only the unsent records; spoolMu
// is held. Rarely needed: send empties the spool whenever everything is
// stored.
func (s *Store) compactSpool() error {
	path := filepath.Join(s.opts.StateDir, SpoolName)
	err := atomicfile.Write(path, 0o640, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		var err error
		s.unsent.each(func(r *record) {
			if err == nil {
				err = enc.Encode(r.line())
			}
		})
		return err
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	s.spool.Close()
	s.spool, s.spoolLines = f, s.unsent.Len()
	return nil
}

// Phones returns every phone of every site, sorted by MAC then site. When
// the database cannot answer within ReadTimeout it returns this site's
// phones from memory and logs why.
func (s *Store) Phones() []inventory.Phone {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadTimeout)
	defer cancel()
	list, err := Query(ctx, s.pool, Filter{}, s.opts.MaxEvents)
	if err != nil {
		s.log.Warn("inventory: reading PostgreSQL failed, showing this site's phones only", "err", MaskURL(err.Error(), s.opts.URL))
		return s.localPhones()
	}
	return list
}

func (s *Store) localPhones() []inventory.Phone {
	list := s.local.Phones()
	for i := range list {
		list[i].Site = s.opts.Site
	}
	return list
}

// Phone returns one phone; seen at several sites, the most recently seen.
func (s *Store) Phone(m phone.MAC) (inventory.Phone, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ReadTimeout)
	defer cancel()
	list, err := Query(ctx, s.pool, Filter{MAC: m}, s.opts.MaxEvents)
	if err != nil {
		s.log.Warn("inventory: reading PostgreSQL failed, showing this site's record", "err", MaskURL(err.Error(), s.opts.URL))
		p, ok := s.local.Phone(m)
		p.Site = s.opts.Site
		return p, ok
	}
	var best inventory.Phone
	found := false
	for _, p := range list {
		if !found || p.LastSeen.After(best.LastSeen) {
			best, found = p, true
		}
	}
	return best, found
}

// Connect opens a pool for a reader (the CLI); the caller closes it.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, errors.New(maskErr(err, url))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, errors.New(maskErr(err, url))
	}
	return pool, nil
}

// LocalView is this appliance's own records, in memory: what a request
// path may read without waiting for the database.
type LocalView struct{ s *Store }

// Local is the store's LocalView.
func (s *Store) Local() LocalView { return LocalView{s} }

// Phone is the phone as this appliance has seen it.
func (v LocalView) Phone(m phone.MAC) (inventory.Phone, bool) {
	p, ok := v.s.local.Phone(m)
	if ok {
		p.Site = v.s.opts.Site
	}
	return p, ok
}
