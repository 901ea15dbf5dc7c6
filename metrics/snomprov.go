package metrics

import (
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/snomprov/snomprov/inventory"
)

// Recorder is an inventory.Recorder that counts every observation before
// handing it on, so the protocol servers report once and know nothing about
// metrics. It owns the registry the counters live in; register the gauges
// on Registry() and serve it with Recorder itself (it is an http.Handler).
type Recorder struct {
	next inventory.Recorder
	reg  *Registry

	dhcp  *CounterVec
	pnp   *CounterVec
	http  *CounterVec
	other *CounterVec
}

// NewRecorder wraps next (nil means inventory.Discard).
func NewRecorder(next inventory.Recorder) *Recorder {
	if next == nil {
		next = inventory.Discard
	}
	reg := NewRegistry()
	return &Recorder{
		next: next,
		reg:  reg,
		dhcp: reg.Counter("snomprov_dhcp_messages_total",
			"DHCP messages seen and sent, by message type (DISCOVER, OFFER, REQUEST, ACK, NAK, ...).", "type"),
		pnp: reg.Counter("snomprov_pnp_total",
			"SIP PnP events by outcome: SUBSCRIBE (answered, NOTIFY sent), IGNORED (recorded, not answered), NOTIFY-ACKED, NOTIFY-TIMEOUT, NOTIFY-REJECTED, NOTIFY-FAILED.", "outcome"),
		http: reg.Counter("snomprov_http_requests_total",
			"HTTP requests from phones by kind of file (general, phone, firmware-file, firmware-image, file) and status code.", "kind", "status"),
		other: reg.Counter("snomprov_events_total",
			"Inventory events of any other step, by step and kind.", "step", "kind"),
	}
}

// Record counts o and passes it on. Observations without a MAC are counted
// too: the inventory drops them, but a 404 for an unidentified phone is
// exactly what an operator needs to see.
func (r *Recorder) Record(o inventory.Observation) {
	kind := string(o.Event.Kind)
	if kind == "" {
		kind = "unknown"
	}
	switch o.Event.Step {
	case inventory.StepDHCP:
		r.dhcp.Inc(kind)
	case inventory.StepPnP:
		r.pnp.Inc(kind)
	case inventory.StepGeneral, inventory.StepPhone, inventory.StepFirmwareFile,
		inventory.StepFirmwareImage, inventory.StepFile, inventory.StepBootstrap:
		r.http.Inc(string(o.Event.Step), kind)
	default:
		step := string(o.Event.Step)
		if step == "" {
			step = "none"
		}
		r.other.Inc(step, kind)
	}
	r.next.Record(o)
}

// Registry is where the counters live; register gauges on it.
func (r *Recorder) Registry() *Registry { return r.reg }

// ServeHTTP answers a Prometheus scrape.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.reg.ServeHTTP(w, req) }

// PoolUsage is one subnet's DHCP pool.
type PoolUsage struct {
	Subnet     string // its network, "10.20.0.0/24": the subnet label
	Used, Size int
}

// RegisterPool exports the DHCP pools' usage, one series per subnet
// labelled with its network (sum them for the whole server). usage is
// called on every scrape; when DHCP is off, do not register it.
func RegisterPool(reg *Registry, usage func() []PoolUsage) {
	perSubnet := func(value func(PoolUsage) int) func() []Sample {
		return func() []Sample {
			pools := usage()
			out := make([]Sample, len(pools))
			for i, p := range pools {
				out[i] = Sample{Values: []string{p.Subnet}, Value: float64(value(p))}
			}
			return out
		}
	}
	reg.GaugeFunc("snomprov_dhcp_pool_used", "Addresses of the subnet's DHCP pool currently leased, quarantined (declined) or reserved.", []string{"subnet"},
		perSubnet(func(p PoolUsage) int { return p.Used }))
	reg.GaugeFunc("snomprov_dhcp_pool_size", "Addresses in the subnet's DHCP pool.", []string{"subnet"},
		perSubnet(func(p PoolUsage) int { return p.Size }))
}

// RegisterDHCPNoSubnet exports the DHCP requests dropped because no
// subnet served matched them (a relay's giaddr, or their interface).
func RegisterDHCPNoSubnet(reg *Registry, dropped func() uint64) {
	reg.CounterFunc("snomprov_dhcp_no_subnet_total",
		"DHCP requests dropped because no subnet served here matches their relay (giaddr) or the interface they came in on.", nil,
		func() []Sample { return []Sample{{Value: float64(dropped())}} })
}

// RegisterDHCPNotServed exports the DHCP requests for the LAN subnet that
// a [dhcp] without a pool leaves to another server (the router's clients).
func RegisterDHCPNotServed(reg *Registry, ignored func() uint64) {
	reg.CounterFunc("snomprov_dhcp_not_served_total",
		"DHCP requests for the LAN subnet, left to another server because [dhcp] has no pool.", nil,
		func() []Sample { return []Sample{{Value: float64(ignored())}} })
}

// RegisterPnPShed exports the NOTIFYs the PnP responder sent without
// retransmissions because its cap of pending NOTIFYs was reached (a flood,
// or phones that never answer); shed is *pnp.Server's Shed.
func RegisterPnPShed(reg *Registry, shed func() uint64) {
	reg.CounterFunc("snomprov_pnp_notify_shed_total",
		"PnP NOTIFYs sent once, without retransmissions, because the cap of NOTIFYs waiting for their phones was reached.", nil,
		func() []Sample { return []Sample{{Value: float64(shed())}} })
}

// PhoneSource is what the phones-by-state gauge reads; *inventory.Store has it.
type PhoneSource interface {
	CountStates(now time.Time, staleAfter time.Duration) map[inventory.State]int
}

// RegisterPhones exports the number of phones in each state, derived at
// scrape time; every state of inventory.States is reported, so a state with
// no phones shows as 0 rather than disappearing from graphs. staleAfter is a func so a config reload takes effect; now may
// be nil (time.Now).
func RegisterPhones(reg *Registry, src PhoneSource, staleAfter func() time.Duration, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	reg.GaugeFunc("snomprov_phones", "Phones in the inventory by derived state.", []string{"state"},
		func() []Sample {
			t := now()
			var stale time.Duration
			if staleAfter != nil {
				stale = staleAfter()
			}
			counts := src.CountStates(t, stale)
			out := make([]Sample, 0, len(inventory.States))
			for _, st := range inventory.States {
				out = append(out, Sample{Values: []string{string(st)}, Value: float64(counts[st])})
			}
			// A state added to the inventory later still shows up.
			for st, n := range counts {
				if !slices.Contains(inventory.States, st) {
					out = append(out, Sample{Values: []string{string(st)}, Value: float64(n)})
				}
			}
			return out
		})
}

// BufferStats is what a shared inventory reports of its write buffer.
type BufferStats struct {
	Buffered  int    // events not yet written to the database
	Dropped   uint64 // events dropped: the buffer was full, or PostgreSQL rejected the event itself
	Written   uint64 // events written
	Connected bool   // the database answered the last write
}

// RegisterInventoryBuffer exports the shared (PostgreSQL) inventory's
// buffer: how much waits for the database, what was written and dropped.
func RegisterInventoryBuffer(reg *Registry, stats func() BufferStats) {
	reg.GaugeFunc("snomprov_inventory_buffered_events", "Inventory events waiting to be written to PostgreSQL.", nil,
		func() []Sample { return []Sample{{Value: float64(stats().Buffered)}} })
	reg.GaugeFunc("snomprov_inventory_database_up", "1 when the last write to the PostgreSQL inventory succeeded.", nil,
		func() []Sample {
			v := 0.0
			if stats().Connected {
				v = 1
			}
			return []Sample{{Value: v}}
		})
	reg.CounterFunc("snomprov_inventory_written_events_total", "Inventory events written to PostgreSQL.", nil,
		func() []Sample { return []Sample{{Value: float64(stats().Written)}} })
	reg.CounterFunc("snomprov_inventory_dropped_events_total", "Inventory events dropped because the buffer for PostgreSQL was full or PostgreSQL rejected the event itself (see the log).", nil,
		func() []Sample { return []Sample{{Value: float64(stats().Dropped)}} })
}

// RegisterBuildInfo exports the constant 1 labelled with the version, so
// dashboards can show which build runs.
func RegisterBuildInfo(reg *Registry, version string) {
	if version == "" {
		version = "dev"
	}
	reg.GaugeFunc("snomprov_build_info", "Always 1; labelled with the snomprov version and Go version.",
		[]string{"version", "goversion"},
		func() []Sample { return []Sample{{Values: []string{version, runtime.Version()}, Value: 1}} })
}

// RegisterStart exports the process start time, so restarts are visible.
func RegisterStart(reg *Registry, start time.Time) {
	reg.GaugeFunc("snomprov_start_time_seconds", "Unix time the snomprov process started.", nil,
		func() []Sample { return []Sample{{Value: float64(start.Unix())}} })
}
