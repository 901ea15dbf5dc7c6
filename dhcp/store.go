package dhcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/snomprov/snomprov/internal/atomicfile"
	"github.com/snomprov/snomprov/phone"
)

// Lease states.
const (
	StateBound    = "bound"    // held by its client until Expiry
	StateReleased = "released" // given back; the client gets it again if still free
	StateDeclined = "declined" // out of the pool until Expiry (DECLINE or a probe conflict)
)

// Lease is one address and who had it last. Expired and released leases are
// kept so a returning client gets its previous address.
type Lease struct {
	IP       netip.Addr `json:"ip"`
	MAC      phone.MAC  `json:"mac"`
	ClientID string     `json:"client_id,omitempty"` // hex of option 61, when the client sent one
	Hostname string     `json:"hostname,omitempty"`
	Expiry   time.Time  `json:"expiry"`
	State    string     `json:"state"`
}

// Active reports whether the lease still holds its address at now.
func (l Lease) Active(now time.Time) bool {
	return (l.State == StateBound || l.State == StateDeclined) && now.Before(l.Expiry)
}

const (
	snapshotName = "dhcp-leases.json"
	journalName  = "dhcp-leases.journal"
	// compactAfter bounds the journal: past this many records the writer
	// folds it into a fresh snapshot.
	compactAfter = 200_000
)

// journalExtent is how much of the journal is written with zeros ahead of
// the records (about 30,000 of them). A group commit then writes into
// blocks the file already has and fdatasyncs, which on ext4 flushes the
// data without a file-system journal commit for the file's size: about
// half the wait and half the machine's CPU per sync of appending and
// fsyncing (BenchmarkJournalSync, docs/benchmarks.md). The size changes,
// with a full fsync, once per extent. A variable for the tests that cross it.
var journalExtent int64 = 4 << 20

// zeros is what the journal is zeroed with, a piece at a time: a buffer of
// journalExtent would stay in the process's memory after each use.
var zeros [64 << 10]byte

// writeZeros writes n zero bytes to w.
func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		k, err := w.Write(zeros[:min(int64(len(zeros)), n)])
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// LoadLeases reads the lease snapshot and journal in stateDir without opening
// the store, for `snomprov leases`. It is safe while a server is running.
// The result is sorted by address.
func LoadLeases(stateDir string) ([]Lease, error) {
	m, _, err := loadLeaseFiles(stateDir)
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out, nil
}

// loadLeaseFiles replays snapshot then journal. The last journal line may be
// torn by a crash mid-write; it is skipped (its ACK never left). Returns the
// number of journal records replayed.
func loadLeaseFiles(dir string) (map[netip.Addr]Lease, int, error) {
	m := map[netip.Addr]Lease{}
	b, err := os.ReadFile(filepath.Join(dir, snapshotName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("reading lease snapshot: %w", err)
	default:
		var list []Lease
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, 0, fmt.Errorf("lease snapshot %s is corrupt (%w): move it away to start with no leases", filepath.Join(dir, snapshotName), err)
		}
		for _, l := range list {
			if l.IP.Is4() {
				m[l.IP] = l
			}
		}
	}
	jb, err := os.ReadFile(filepath.Join(dir, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reading lease journal: %w", err)
	}
	n, err := replayJournal(jb, m)
	if err != nil {
		return nil, 0, fmt.Errorf("lease journal %s: %w", filepath.Join(dir, journalName), err)
	}
	return m, n, nil
}

// replayJournal applies newline-terminated JSON records to m. The records
// end at the first NUL byte: the zeros written ahead of them, or a block a
// crash left unwritten (a record never holds a NUL, and everything before
// the last fdatasync is on disk, so nothing ACKed lies past one). A final
// line without its newline is a torn write and is ignored; a bad complete
// line is an error, because that is not something a crash produces.
func replayJournal(b []byte, m map[netip.Addr]Lease) (int, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	n, line := 0, 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // torn tail
		}
		rec := b[:i]
		b = b[i+1:]
		line++
		if len(rec) == 0 {
			continue
		}
		var l Lease
		if err := json.Unmarshal(rec, &l); err != nil || !l.IP.Is4() {
			return n, fmt.Errorf("line %d is corrupt (%v): move the file away to drop it", line, err)
		}
		m[l.IP] = l
		n++
	}
	return n, nil
}

// commitReq is one lease waiting to be made durable. after runs on the
// writer goroutine once the lease is fsynced (err nil) or failed; it sends
// the ACK, so no request goroutine sits blocked on the disk.
type commitReq struct {
	lease   Lease
	after   func(error) // nil: fire and forget (RELEASE, DECLINE)
	barrier chan struct{}
}

// store persists leases: an append-only journal, fsynced in groups by one
// writer goroutine, folded into an atomically replaced snapshot at start and
// whenever the journal grows past compactAfter records.
type store struct {
	dir     string
	log     *slog.Logger
	journal *os.File
	records int   // records in the journal file
	off     int64 // where the next record goes
	zeroed  int64 // the journal's size: zeros from off on
	// dirty is how far a failed write may have left bytes past off; the
	// next write covers them with empty lines, so that no part of a
	// record that was never ACKed is read back.
	dirty int64

	queue    chan commitReq
	snapshot func() []Lease // current lease table, for compaction
	// batchDone runs on the writer after each group's callbacks (it hands
	// their ACKs on); done, when not nil, is a barrier's, to be closed once
	// those ACKs have left.
	batchDone func(done chan struct{})
	stopped   func() // runs on the writer when it stops, after its last batchDone
	wg        sync.WaitGroup
	stopOnce  sync.Once
	stop      chan struct{}
	wait      func(time.Duration) // time.Sleep; a test's hook in tests
}

func openStore(dir string, log *slog.Logger) (*store, map[netip.Addr]Lease, error) {
	if dir == "" {
		return nil, nil, errors.New("no state directory: set [server] state_dir")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("creating state directory: %w", err)
	}
	m, _, err := loadLeaseFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	s := &store{dir: dir, log: log, queue: make(chan commitReq, 8192), stop: make(chan struct{}), wait: time.Sleep}
	list := make([]Lease, 0, len(m))
	for _, l := range m {
		list = append(list, l)
	}
	// Fold the old journal into a snapshot, then start an empty journal.
	if err := s.writeSnapshot(list); err != nil {
		return nil, nil, err
	}
	if err := s.newJournal(); err != nil {
		return nil, nil, err
	}
	return s, m, nil
}

// newJournal replaces the journal with an empty one, zeroed ahead
// (journalExtent), atomically: a crash leaves the old one or the new.
func (s *store) newJournal() error {
	path := filepath.Join(s.dir, journalName)
	f, err := atomicfile.Replace(path, 0o640, func(w io.Writer) error { return writeZeros(w, journalExtent) })
	if err != nil {
		return fmt.Errorf("creating lease journal: %w", err)
	}
	if s.journal != nil {
		s.journal.Close()
	}
	s.journal, s.records, s.off, s.zeroed, s.dirty = f, 0, 0, journalExtent, 0
	return nil
}

// extend zeroes at least need more bytes at the journal's end and syncs
// the new size, before records are written there.
func (s *store) extend(need int) error {
	n := max(int64(need), journalExtent)
	if err := writeZeros(io.NewOffsetWriter(s.journal, s.zeroed), n); err != nil {
		return err
	}
	if err := s.journal.Sync(); err != nil {
		return err
	}
	s.zeroed += n
	return nil
}

// writeSnapshot replaces the snapshot atomically (internal/atomicfile).
func (s *store) writeSnapshot(list []Lease) error {
	sort.Slice(list, func(i, j int) bool { return list[i].IP.Less(list[j].IP) })
	b, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("encoding lease snapshot: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, snapshotName), b, 0o600); err != nil {
		return fmt.Errorf("writing lease snapshot: %w", err)
	}
	return nil
}

// start runs the writer. snapshot must return the in-memory lease table;
// batchDone (may be nil) runs after the callbacks of each group commit.
// stopped (may be nil) runs last, on the writer, when it stops.
func (s *store) start(snapshot func() []Lease, batchDone func(done chan struct{}), stopped func()) {
	s.snapshot, s.batchDone, s.stopped = snapshot, batchDone, stopped
	s.wg.Add(1)
	go s.writer()
}

// close stops the writer after it has written everything queued.
func (s *store) close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return s.journal.Close()
}

var errStoreClosed = errors.New("lease store is closed")

// commit queues l; after (if not nil) runs once l is durable or failed.
func (s *store) commit(l Lease, after func(error)) {
	select {
	case s.queue <- commitReq{lease: l, after: after}:
	case <-s.stop:
		if after != nil {
			after(errStoreClosed)
		}
	}
}

// barrier returns once everything queued before it is written and its
// callbacks have run.
func (s *store) barrier() {
	ch := make(chan struct{})
	select {
	case s.queue <- commitReq{barrier: ch}:
		<-ch
	case <-s.stop:
	}
}

// groupWait is how long the writer lets a group gather once it is busy
// (the previous group held more than one request, or more are already
// queued), like PostgreSQL's commit_delay. Without it a storm's groups
// follow the fsync's own pace: about 3 leases each at 6,000 REQUESTs/s,
// so the disk is synced thousands of times a second and that kernel work
// is a fifth of the server's CPU. Waiting 1 ms makes the groups about four
// times larger (docs/benchmarks.md). A lone client never waits.
const groupWait = time.Millisecond

// writer is the group commit: it takes whatever is queued, appends it in one
// write, fsyncs once and releases every waiter.
func (s *store) writer() {
	defer s.wg.Done()
	batch := make([]commitReq, 0, 1024)
	var buf []byte
	busy := false // the last group held more than one request
	for {
		batch = batch[:0]
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		case <-s.stop:
			// Drain what is left so no waiter hangs.
			for {
				select {
				case r := <-s.queue:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.flush(batch, &buf)
			}
			if s.stopped != nil {
				s.stopped()
			}
			return
		}
		if busy || len(s.queue) > 0 {
			s.wait(groupWait)
		}
		batch = s.take(batch)
		busy = len(batch) > 1
		s.flush(batch, &buf)
		if s.records >= compactAfter {
			s.compact()
		}
	}
}

// take appends what is queued to batch, up to its capacity, without waiting.
func (s *store) take(batch []commitReq) []commitReq {
	for len(batch) < cap(batch) {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (s *store) flush(batch []commitReq, buf *[]byte) {
	b := (*buf)[:0]
	n := 0
	for _, r := range batch {
		if r.barrier == nil {
			b = appendRecord(b, &r.lease)
			n++
		}
	}
	var err error
	if n > 0 {
		for s.off+int64(len(b)) < s.dirty {
			b = append(b, '\n')
		}
		if s.off+int64(len(b)) > s.zeroed {
			err = s.extend(len(b))
		}
		if err == nil {
			_, err = s.journal.WriteAt(b, s.off)
		}
		if err == nil {
			err = fdatasync(s.journal)
		}
	}
	*buf = b
	if err != nil {
		s.dirty = max(s.dirty, s.off+int64(len(b)))
		err = fmt.Errorf("lease journal write failed (disk full or read-only?): %w", err)
		s.log.Warn("lease not stored; no ACK sent", "err", err)
	} else {
		s.records += n
		s.off += int64(len(b))
	}
	for _, r := range batch {
		switch {
		case r.after != nil:
			r.after(err)
		case r.barrier != nil:
			if s.batchDone != nil {
				s.batchDone(r.barrier) // closed once what was queued before it has left
			} else {
				close(r.barrier)
			}
		}
	}
	if s.batchDone != nil {
		s.batchDone(nil)
	}
}

// appendRecord appends l as one journal record: the JSON object
// encoding/json makes of a Lease (same keys, same order, omitempty alike),
// and the newline that ends a record. Written by hand because the writer
// encodes every lease of every group commit on the one goroutine that all
// ACKs wait for; replayJournal reads it back with encoding/json, and
// TestAppendRecordIsJSON holds the two equal.
func appendRecord(b []byte, l *Lease) []byte {
	b = append(b, `{"ip":"`...)
	b = l.IP.AppendTo(b)
	b = append(b, `","mac":"`...)
	b = l.MAC.AppendTo(b)
	b = append(b, '"')
	if l.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendJSONString(b, l.ClientID)
	}
	if l.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = appendJSONString(b, l.Hostname)
	}
	b = append(b, `,"expiry":"`...)
	b = l.Expiry.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","state":`...)
	b = appendJSONString(b, l.State)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. Lease strings are sanitized
// to printable ASCII or hex, but any input gives valid JSON: quote and
// backslash are escaped, control characters too, and <, >, & as
// encoding/json escapes them.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// compact writes the whole table as a snapshot and empties the journal. The
// table already contains every journalled record (records are applied in
// memory before they are queued), so nothing is lost in between.
func (s *store) compact() {
	if err := s.writeSnapshot(s.snapshot()); err != nil {
		s.log.Warn("lease snapshot failed; journal keeps growing", "err", err)
		return
	}
	if err := s.newJournal(); err != nil {
		s.log.Warn("starting a new lease journal failed; the old one keeps growing", "err", err)
	}
}
