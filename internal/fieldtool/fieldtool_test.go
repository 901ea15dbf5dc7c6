package fieldtool

import (
	"errors"
	"sync"
	"testing"
)

type res bool

func (r res) OK() bool { return bool(r) }

func TestEachFailedErr(t *testing.T) {
	got := Each(5, func(i int) res { return i%2 == 0 })
	want := []res{true, false, true, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Each = %v, want %v (in order)", got, want)
		}
	}
	if n := Failed(got); n != 2 {
		t.Errorf("Failed = %d", n)
	}
	sentinel := errors.New("tool failed")
	err := Err(sentinel, got, "phone(s) did not answer")
	if !errors.Is(err, sentinel) || err.Error() != "tool failed: 2 of 5 phone(s) did not answer" {
		t.Errorf("Err = %v", err)
	}
	if err := Err(sentinel, []res{true}, "x"); err != nil {
		t.Errorf("all OK: %v", err)
	}
	if got := Each(0, func(int) res { return false }); len(got) != 0 {
		t.Errorf("Each(0) = %v", got)
	}
}

func TestEachLimitBoundsConcurrency(t *testing.T) {
	for _, tc := range []struct{ n, limit, wantMax int }{
		{n: 100, limit: 3, wantMax: 3},
		{n: 5, limit: 0, wantMax: 5},
		{n: 5, limit: 50, wantMax: 5},
		{n: 1, limit: 1, wantMax: 1},
	} {
		var mu sync.Mutex
		running, peak := 0, 0
		release := make(chan struct{})
		started := make(chan struct{}, tc.n)
		done := make(chan []int)
		go func() {
			done <- EachLimit(tc.n, tc.limit, func(i int) int {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				started <- struct{}{}
				<-release
				mu.Lock()
				running--
				mu.Unlock()
				return i * i
			})
		}()
		// Wait until as many calls as allowed run at once, then let them go.
		for range tc.wantMax {
			<-started
		}
		close(release)
		got := <-done
		if peak != tc.wantMax {
			t.Errorf("n=%d limit=%d: %d ran at once, want %d", tc.n, tc.limit, peak, tc.wantMax)
		}
		for i, v := range got {
			if v != i*i {
				t.Fatalf("n=%d limit=%d: result %d = %d, out of order", tc.n, tc.limit, i, v)
			}
		}
	}
}
