package app

import (
	"runtime/debug"
	"testing"
)

func TestWithLoadGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		name         string
		user, during int
	}{
		{"default GOGC is tightened", 100, loadGCPercent},
		{"a larger GOGC is tightened", 400, loadGCPercent},
		{"a lower GOGC is kept", 10, 10},
		{"GOGC=off is kept", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(tc.user)
			got := -2
			WithLoadGC(func() { got = gcPercent() })
			if got != tc.during {
				t.Errorf("GOGC while loading = %d, want %d", got, tc.during)
			}
			if after := gcPercent(); after != tc.user {
				t.Errorf("GOGC after loading = %d, want %d restored", after, tc.user)
			}
		})
	}
}

// gcPercent reads the GC setting: SetGCPercent returns the one it replaces.
func gcPercent() int {
	cur := debug.SetGCPercent(100)
	debug.SetGCPercent(cur)
	return cur
}
