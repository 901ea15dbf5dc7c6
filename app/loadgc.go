package app

import "runtime/debug"

// loadGCPercent is the GC target while a configuration is parsed and
// rendered. Loading 1000 phones makes about 30 MB of short-lived garbage
// (the TOML tree, key positions, the rendering); at the default GOGC=100 the
// heap may double before each collection, which put the start-up peak at
// 29-30 MiB RSS against the 30 MB budget (docs/benchmarks.md). At 25 the
// heap stays near its live size, for a few more milliseconds of GC.
const loadGCPercent = 25

// WithLoadGC runs f, which parses or renders a configuration, under a tight
// GC and then returns the garbage to the OS, so that neither a start nor a
// reload on a small Pi carries the parse in its RSS. A lower GOGC, or
// GOGC=off, set by the user is left alone.
func WithLoadGC(f func()) {
	old := debug.SetGCPercent(loadGCPercent)
	if old < loadGCPercent { // includes GOGC=off (-1)
		debug.SetGCPercent(old)
	}
	defer func() {
		debug.SetGCPercent(old)
		debug.FreeOSMemory()
	}()
	f()
}
