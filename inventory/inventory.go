// Package inventory is the one record of every phone the appliance has seen.
// The DHCP, PnP and HTTP servers each report what happened to a phone as an
// Observation; the status page, the API and `snomprov phones` read it back.
// It is kept in memory and written to a JSON snapshot in the state directory.
package inventory

import (
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

	"github.com/snomprov/snomprov/internal/atomicfile"
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
	// StepBootstrap: over plain HTTP the phone's own file was withheld and
	// the secret-free file that moves it to HTTPS served instead.
	StepBootstrap Step = "bootstrap"
	// StepAction: something an installer did to the phone (resync, reboot,
	// clearing the firmware loop guard), recorded with its result. It is off
	// the boot path and never changes the phone's state by itself.
	StepAction Step = "action"
)

// Steps lists the steps in boot order.
var Steps = []Step{StepDHCP, StepPnP, StepGeneral, StepPhone, StepFirmwareFile, StepFirmwareImage}

// Event is one thing that happened to a phone.
type Event struct {
	Time   time.Time `json:"time"`
	Step   Step      `json:"step"`
	Kind   Kind      `json:"kind,omitempty"` // see Kind
	OK     bool      `json:"ok"`
	Detail string    `json:"detail"`
	IP     string    `json:"ip,omitempty"`
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
	MAC phone.MAC `json:"mac"`
	// Site is the appliance's site that saw the phone, in a shared
	// (PostgreSQL) inventory; empty in the file store.
	Site     string `json:"site,omitempty"`
	Model    string `json:"model,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	IP       string `json:"ip,omitempty"`
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

	flushMu   sync.Mutex // serialises writers of the snapshot file
	writeFile func(path string, perm os.FileMode, write func(io.Writer) error) error
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
	s := &Store{path: path, opts: opts, now: time.Now, phones: make(map[phone.MAC]*Phone), writeFile: atomicfile.Write}
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
		return nil, err
	}
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
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
		// Room for a boot's first events (DHCP's DISCOVER, REQUEST, ACK
		// and PnP's): one allocation instead of one per doubling.
		p = &Phone{MAC: o.MAC, FirstSeen: o.Event.Time, Steps: make(map[Step]StepResult), Events: make([]Event, 0, 4)}
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
		// Formatted only when it changed: parsing the text does not
		// allocate (the error of parsing "" would, hence the first test).
		if p.IP == "" {
			p.IP = o.IP.String()
		} else if cur, err := netip.ParseAddr(p.IP); err != nil || cur != o.IP {
			p.IP = o.IP.String()
		}
		if o.Event.IP == "" {
			o.Event.IP = p.IP
		}
	}
	// An installer's action is not the phone being seen: a resync that
	// times out must leave a stale phone stale.
	if o.Event.Step != StepAction && o.Event.Time.After(p.LastSeen) {
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
// write is atomic (internal/atomicfile).
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
	err := os.MkdirAll(filepath.Dir(s.path), 0o750)
	if err == nil {
		err = s.writeFile(s.path, 0o640, s.encodeSnapshot)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// flushChunk is how many phones encodeSnapshot copies per hold of the lock.
const flushChunk = 256

// encodeSnapshot writes the snapshot to w without holding the store's lock
// while it encodes or writes: the phones are copied under the lock a chunk
// at a time, and each chunk is encoded and written after the lock is
// released. So a slow disk (an SD card) delays only the flusher, never a
// Record on the servers' hot path, and the copy held at once is bounded
// by flushChunk phones rather than the whole store.
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
	chunk := make([]Phone, 0, min(flushChunk, len(macs)))
	first := true
	for len(macs) > 0 {
		n := min(flushChunk, len(macs))
		chunk = chunk[:0]
		s.mu.Lock()
		for _, m := range macs[:n] {
			if p, ok := s.phones[m]; ok {
				chunk = append(chunk, p.clone(s.opts.MaxEvents))
			}
		}
		s.mu.Unlock()
		macs = macs[n:]
		for i := range chunk {
			if !first {
				if _, err := io.WriteString(w, ","); err != nil {
					return err
				}
			}
			first = false
			if err := enc.Encode(&chunk[i]); err != nil {
				return err
			}
			chunk[i] = Phone{} // let the copy go as soon as it is written
		}
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

// Recorder is what the protocol servers need from the inventory. Tests pass
// their own implementation.
type Recorder interface {
	Record(Observation)
}

// Discard is a Recorder that drops everything.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Observation) {}
