// Package metrics is a small hand-written Prometheus registry: labelled
// counters and gauges computed by callbacks at scrape time, written in the
// Prometheus text exposition format (version 0.0.4). It exists so snomprov
// needs no client library for the handful of series it exports.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// MaxSeries bounds the label sets of one counter. Label values come from the
// network (a DHCP message type, an HTTP status), so a misbehaving peer must
// not be able to grow the registry without limit; extra sets are folded into
// one series whose labels all read "other".
const MaxSeries = 256

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Registry holds metric families and writes them in name order.
type Registry struct {
	mu       sync.Mutex
	families map[string]family
}

type family interface {
	name() string
	write(w *bufio.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: make(map[string]family)}
}

// register panics on a programming error (bad or duplicate name), the way
// regexp.MustCompile does: metric names are constants in the source.
func (r *Registry) register(f family, help string, labels []string) {
	n := f.name()
	if !metricNameRE.MatchString(n) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", n))
	}
	if strings.TrimSpace(help) == "" {
		panic(fmt.Sprintf("metrics: %s needs a help text", n))
	}
	seen := map[string]bool{}
	for _, l := range labels {
		if !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__") || seen[l] {
			panic(fmt.Sprintf("metrics: %s: invalid or repeated label name %q", n, l))
		}
		seen[l] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[n]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", n))
	}
	r.families[n] = f
}

// WriteTo writes every family in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].name() < fams[j].name() })
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range fams {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

// ServeHTTP answers a scrape.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	if req.Method == http.MethodHead {
		return
	}
	// A failed write means the scraper went away; nothing to tell it.
	_, _ = r.WriteTo(w)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// CounterVec is a counter family with a fixed list of label names.
type CounterVec struct {
	fname, help string
	labels      []string

	mu     sync.Mutex
	series map[string]*counterSeries // keyed by the joined label values
}

type counterSeries struct {
	values []string
	n      uint64
}

// Counter registers a counter family. Its name should end in _total.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{fname: name, help: help, labels: labels, series: make(map[string]*counterSeries)}
	r.register(c, help, labels)
	return c
}

func (c *CounterVec) name() string { return c.fname }

// Add adds n to the series with these label values, one per label name.
func (c *CounterVec) Add(n uint64, values ...string) {
	if len(values) != len(c.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", c.fname, len(c.labels), len(values)))
	}
	// The key is built on the stack and looked up as string(bytes), which
	// does not allocate: this runs on every request the servers handle.
	var buf [128]byte
	kb := buf[:0]
	for i, v := range values {
		if i > 0 {
			kb = append(kb, 0xff)
		}
		kb = append(kb, v...)
	}
	c.mu.Lock()
	s := c.series[string(kb)]
	if s == nil {
		key := string(kb)
		if len(c.series) >= MaxSeries {
			values = make([]string, len(c.labels))
			for i := range values {
				values[i] = "other"
			}
			key = strings.Join(values, "\xff")
			s = c.series[key]
		}
		if s == nil {
			s = &counterSeries{values: append([]string(nil), values...)}
			c.series[key] = s
		}
	}
	s.n += n
	c.mu.Unlock()
}

// Inc adds one.
func (c *CounterVec) Inc(values ...string) { c.Add(1, values...) }

// Value returns the current count of one series (0 if it never counted).
func (c *CounterVec) Value(values ...string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.series[strings.Join(values, "\xff")]; s != nil {
		return s.n
	}
	return 0
}

func (c *CounterVec) write(w *bufio.Writer) {
	c.mu.Lock()
	samples := make([]Sample, 0, len(c.series))
	for _, s := range c.series {
		samples = append(samples, Sample{Values: s.values, Value: float64(s.n)})
	}
	c.mu.Unlock()
	writeFamily(w, c.fname, c.help, "counter", c.labels, samples)
}

// Sample is one series of a gauge callback: label values in the order of
// the family's label names, and the value.
type Sample struct {
	Values []string
	Value  float64
}

type gaugeFunc struct {
	fname, help string
	typ         string // gauge or counter
	labels      []string
	collect     func() []Sample
}

// GaugeFunc registers a gauge family whose samples are computed by collect
// on every scrape. collect may return no samples (the family then shows only
// its HELP and TYPE lines); samples with the wrong number of label values
// are dropped rather than written malformed.
func (r *Registry) GaugeFunc(name, help string, labels []string, collect func() []Sample) {
	g := &gaugeFunc{fname: name, help: help, typ: "gauge", labels: labels, collect: collect}
	r.register(g, help, labels)
}

// CounterFunc registers a counter family whose samples collect reads from
// a count kept elsewhere (it must only grow), like GaugeFunc.
func (r *Registry) CounterFunc(name, help string, labels []string, collect func() []Sample) {
	g := &gaugeFunc{fname: name, help: help, typ: "counter", labels: labels, collect: collect}
	r.register(g, help, labels)
}

func (g *gaugeFunc) name() string { return g.fname }

func (g *gaugeFunc) write(w *bufio.Writer) {
	var ok []Sample
	for _, s := range g.collect() {
		if len(s.Values) == len(g.labels) {
			ok = append(ok, s)
		}
	}
	writeFamily(w, g.fname, g.help, g.typ, g.labels, ok)
}

func writeFamily(w *bufio.Writer, name, help, typ string, labels []string, samples []Sample) {
	sort.Slice(samples, func(i, j int) bool {
		a, b := samples[i].Values, samples[j].Values
		for k := range a {
			if a[k] != b[k] {
				return a[k] < b[k]
			}
		}
		return false
	})
	fmt.Fprintf(w, "# HELP %s %s\n", name, escapeHelp(help))
	fmt.Fprintf(w, "# TYPE %s %s\n", name, typ)
	for _, s := range samples {
		w.WriteString(name)
		if len(labels) > 0 {
			w.WriteByte('{')
			for i, l := range labels {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(l)
				w.WriteString(`="`)
				w.WriteString(escapeLabelValue(s.Values[i]))
				w.WriteByte('"')
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(formatValue(s.Value))
		w.WriteByte('\n')
	}
}

// escapeHelp escapes a HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeLabelValue escapes a label value: backslash, double quote and line
// feed. Invalid UTF-8 is replaced, since the format requires UTF-8.
func escapeLabelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		// Counts and Unix times read better without an exponent.
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
