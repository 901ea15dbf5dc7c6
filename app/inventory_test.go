package app

import (
	"testing"

	"github.com/snomprov/snomprov/metrics"
)

func TestInventoryHealth(t *testing.T) {
	for _, tc := range []struct {
		st   metrics.BufferStats
		ok   bool
		want string
	}{
		{metrics.BufferStats{Connected: true}, true, "PostgreSQL"},
		{metrics.BufferStats{Connected: false, Buffered: 12}, false, "PostgreSQL unavailable: phones are served, events are kept until it is back; 12 events waiting"},
		{metrics.BufferStats{Connected: false, Buffered: 3, Dropped: 2}, false, "PostgreSQL unavailable: phones are served, events are kept until it is back; 3 events waiting; 2 dropped (buffer full)"},
	} {
		c := inventoryHealth(tc.st)
		if c.Name != "inventory" || c.OK != tc.ok || c.Detail != tc.want {
			t.Errorf("%+v: %+v", tc.st, c)
		}
	}
}
