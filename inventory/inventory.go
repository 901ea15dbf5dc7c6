// Package inventory is the one record of every phone the appliance has seen.
// The DHCP, PnP and HTTP servers each report what happened to a phone as an
// Observation; the status page, the API and `snomprov phones` read it back.
// It is kept in memory and written to a JSON snapshot in the state directory.
package inventory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/snomprov/snomprov/phone"
)

// Step names one stage of a phone's way to a working configuration.
type Step string

// The steps, in the order a booting phone normally goes through them.
const (
	StepDHCP          Step = "dhcp"           // lease from our DHCP server
	StepPnP           Step = "pnp"            // SIP PnP SUBSCRIBE answered / NOTIFY acknowledged
	StepGeneral       Step = "general"        // <phoneType>.htm
	StepPhone         Step = "phone"          // <phoneType>-<MAC>.htm
	StepFirmwareFile  Step = "firmware-file"  // <phoneType>-firmware.htm
	StepFirmwareImage Step = "firmware-image" // the image under /firmware/
	StepFile          Step = "file"           // anything else served (language files, images)
)

// Steps lists the steps in boot order.
var Steps = []Step{StepDHCP, StepPnP, StepGeneral, StepPhone, StepFirmwareFile, StepFirmwareImage}

// Event is one thing that happened to a phone.
type Event struct {
	Time time.Time `json:"time"`
	Step Step      `json:"step"`
	// Kind is short and machine-readable, for metrics: the DHCP message type
	// (DISCOVER, OFFER, REQUEST, ACK, NAK, RELEASE, DECLINE, INFORM), the PnP
	// outcome (SUBSCRIBE, IGNORED, NOTIFY-ACKED, NOTIFY-TIMEOUT) or the HTTP
	// status code ("200", "404").
	Kind   string `json:"kind,omitempty"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	IP     string `json:"ip,omitempty"`
}

// Observation is what a server reports. Empty identity fields leave the
// stored values alone, so each server only says what it knows.
type Observation struct {
	MAC      phone.MAC
	Model    string
	Firmware string
	Hostname string
	IP       netip.Addr
	// FirmwareTarget is the firmware version the settings just served point
	// the phone at, FirmwareUnmanaged when they point it at none, empty when
	// this observation does not say.
	FirmwareTarget string
	Event          Event // Time defaults to now, IP to the observation's IP
}

// FirmwareUnmanaged is the FirmwareTarget of a phone whose model has no
// firmware configured: it keeps what it runs, and is up to date once its
// settings are fetched.
const FirmwareUnmanaged = "unmanaged"

// StepResult is the last outcome of one step.
type StepResult struct {
	Time   time.Time `json:"time"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail"`
}

// Phone is everything known about one phone. Values returned by the Store are
// copies and safe to keep.
type Phone struct {
	MAC      phone.MAC `json:"mac"`
	Model    string    `json:"model,omitempty"`
	Firmware string    `json:"firmware,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	IP       string    `json:"ip,omitempty"`
	// FirmwareTarget: see Observation.FirmwareTarget.
	FirmwareTarget string              `json:"firmware_target,omitempty"`
	FirstSeen      time.Time           `json:"first_seen"`
	LastSeen       time.Time           `json:"last_seen"`
	Steps          map[Step]StepResult `json:"steps"`
	Events         []Event             `json:"events"` // oldest first
}

// Options bound the store.
type Options struct {
	MaxPhones     int           // oldest (by LastSeen) are dropped beyond this; default 5000
	MaxEvents     int           // per phone; default 50
	FlushInterval time.Duration // how often Run writes a dirty store; default 2s
}

// Store holds the inventory. It is safe for concurrent use.
type Store struct {
	path string
	opts Options
	now  func() time.Time

	mu     sync.Mutex
	phones map[phone.MAC]*Phone
	dirty  bool

	flushMu sync.Mutex // serialises writers of the snapshot file
}

const fileName = "phones.json"

// Path returns the snapshot file inside stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, fileName) }

// Open loads the snapshot at path, if any. An empty path keeps the store in
// memory only. A corrupt snapshot is an error rather than silently dropped.
func Open(path string, opts Options) (*Store, error) {
	if opts.MaxPhones <= 0 {
		opts.MaxPhones = 5000
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 50
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 2 * time.Second
	}
	s := &Store{path: path, opts: opts, now: time.Now, phones: make(map[phone.MAC]*Phone)}
	if path == "" {
		return s, nil
	}
	list, err := Load(path)
	if err != nil {
		return nil, err
	}
	for i := range list {
		p := list[i]
		if p.Steps == nil {
			p.Steps = make(map[Step]StepResult)
		}
		s.phones[p.MAC] = &p
	}
	return s, nil
}

// Load reads a snapshot without opening a store, for the CLI. A missing file
// is an empty inventory.
func Load(path string) ([]Phone, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("inventory: %s: %w", path, err)
	}
	return snap.Phones, nil
}

type snapshot struct {
	Version int     `json:"version"`
	Phones  []Phone `json:"phones"`
}

// Record adds an observation. It is called on every request the servers
// handle, so it only touches memory.
func (s *Store) Record(o Observation) {
	if o.MAC.IsZero() {
		return
	}
	if o.Event.Time.IsZero() {
		o.Event.Time = s.now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.phones[o.MAC]
	if p == nil {
		if len(s.phones) >= s.opts.MaxPhones {
			s.evictOldestLocked()
		}
		p = &Phone{MAC: o.MAC, FirstSeen: o.Event.Time, Steps: make(map[Step]StepResult)}
		s.phones[o.MAC] = p
	}
	if o.Model != "" {
		p.Model = o.Model
	}
	if o.Firmware != "" {
		p.Firmware = o.Firmware
	}
	if o.Hostname != "" {
		p.Hostname = o.Hostname
	}
	if o.FirmwareTarget != "" {
		p.FirmwareTarget = o.FirmwareTarget
	}
	if o.IP.IsValid() {
		// Formatted only when it changed: parsing the text does not allocate.
		if cur, err := netip.ParseAddr(p.IP); err != nil || cur != o.IP {
			p.IP = o.IP.String()
		}
		if o.Event.IP == "" {
			o.Event.IP = p.IP
		}
	}
	if o.Event.Time.After(p.LastSeen) {
		p.LastSeen = o.Event.Time
	}
	if o.Event.Step != "" {
		p.Steps[o.Event.Step] = StepResult{Time: o.Event.Time, OK: o.Event.OK, Detail: o.Event.Detail}
		// The slice may hold up to twice MaxEvents and is cut back to the
		// newest MaxEvents-1 when full: one copy per MaxEvents records
		// instead of one per record. Readers see the newest MaxEvents
		// (view).
		if len(p.Events) >= 2*s.opts.MaxEvents {
			n := copy(p.Events, p.Events[len(p.Events)-s.opts.MaxEvents+1:])
			clear(p.Events[n:])
			p.Events = p.Events[:n]
		}
		p.Events = append(p.Events, o.Event)
	}
	s.dirty = true
}

// evictOldestLocked drops the least recently seen tenth of the phones at
// once, so a storm of new MACs into a full store costs one scan per many
// inserts rather than one per insert.
func (s *Store) evictOldestLocked() {
	n := len(s.phones) / 10
	if n < 1 {
		n = 1
	}
	all := make([]*Phone, 0, len(s.phones))
	for _, p := range s.phones {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].LastSeen.Before(all[j].LastSeen) })
	for _, p := range all[:n] {
		delete(s.phones, p.MAC)
	}
}

// Phones returns a copy of every phone, sorted by MAC.
func (s *Store) Phones() []Phone {
	s.mu.Lock()
	out := make([]Phone, 0, len(s.phones))
	for _, p := range s.phones {
		out = append(out, p.clone(s.opts.MaxEvents))
	}
	s.mu.Unlock()
	// Byte order of the MAC is the order of its canonical hex text.
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].MAC[:], out[j].MAC[:]) < 0 })
	return out
}

// CountStates returns how many phones are in each state, without copying
// them (the metrics gauge and the systemd status line ask for it often).
func (s *Store) CountStates(now time.Time, staleAfter time.Duration) map[State]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := make(map[State]int)
	for _, p := range s.phones {
		st, _ := p.view(s.opts.MaxEvents).State(now, staleAfter)
		counts[st]++
	}
	return counts
}

// Phone returns a copy of one phone.
func (s *Store) Phone(m phone.MAC) (Phone, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.phones[m]
	if !ok {
		return Phone{}, false
	}
	return p.clone(s.opts.MaxEvents), true
}

func (p *Phone) clone(maxEvents int) Phone {
	c := p.view(maxEvents)
	c.Steps = make(map[Step]StepResult, len(p.Steps))
	for k, v := range p.Steps {
		c.Steps[k] = v
	}
	c.Events = append([]Event(nil), c.Events...)
	return c
}

// view is p with only the newest maxEvents events; it shares p's memory.
func (p *Phone) view(maxEvents int) Phone {
	c := *p
	if n := len(c.Events); n > maxEvents {
		c.Events = c.Events[n-maxEvents:]
	}
	return c
}

// Flush writes the snapshot if anything changed since the last write. The
// write is atomic: a temporary file, fsync, rename, fsync of the directory.
func (s *Store) Flush() error {
	if s.path == "" {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	s.dirty = false
	s.mu.Unlock()
	err := writeAtomic(s.path, 0o640, s.encodeSnapshot)
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

// encodeSnapshot streams the snapshot phone by phone, each under the lock
// only while it is encoded: a full store is megabytes of JSON, written every
// few seconds under a boot storm, and neither a copy of it nor a long lock
// hold on the servers' hot path is wanted.
func (s *Store) encodeSnapshot(w io.Writer) error {
	s.mu.Lock()
	macs := make([]phone.MAC, 0, len(s.phones))
	for m := range s.phones {
		macs = append(macs, m)
	}
	s.mu.Unlock()
	sort.Slice(macs, func(i, j int) bool { return bytes.Compare(macs[i][:], macs[j][:]) < 0 })
	if _, err := io.WriteString(w, `{"version":1,"phones":[`); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	first := true
	for _, m := range macs {
		s.mu.Lock()
		p, ok := s.phones[m]
		var err error
		if ok {
			if !first {
				_, err = io.WriteString(w, ",")
			}
			if err == nil {
				v := p.view(s.opts.MaxEvents)
				err = enc.Encode(&v)
			}
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		first = first && !ok
	}
	_, err := io.WriteString(w, "]}\n")
	return err
}

// Run flushes the store periodically until ctx is done, then once more.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.Flush()
		case <-t.C:
			// A failed periodic write is retried on the next tick; the final
			// flush reports it.
			_ = s.Flush()
		}
	}
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, perm, func(w io.Writer) error { _, err := w.Write(data); return err })
}

func writeAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Recorder is what the protocol servers need from the inventory. Tests pass
// their own implementation.
type Recorder interface {
	Record(Observation)
}

// Discard is a Recorder that drops everything.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Observation) {}
