// Package fieldtool is what the installer's field tools that act on many
// phones at once (simulate, resync) share: one run per phone, concurrently,
// and the count of phones that failed as the tool's error.
package fieldtool

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Result is one phone's outcome.
type Result interface{ OK() bool }

// Each runs f for 0..n-1 concurrently and returns the results in that order.
func Each[T any](n int, f func(i int) T) []T { return EachLimit(n, n, f) }

// EachLimit is Each with at most limit calls of f running at a time
// (limit < 1 or > n: n), taken in index order.
func EachLimit[T any](n, limit int, f func(i int) T) []T {
	out := make([]T, n)
	if limit < 1 || limit > n {
		limit = n
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				out[i] = f(i)
			}
		})
	}
	wg.Wait()
	return out
}

// Failed counts the results that are not OK.
func Failed[T Result](results []T) int {
	n := 0
	for _, r := range results {
		if !r.OK() {
			n++
		}
	}
	return n
}

// Err is nil when every result is OK, else "<sentinel>: N of M <what>",
// wrapping sentinel (the tool's ErrFailed).
func Err[T Result](sentinel error, results []T, what string) error {
	if n := Failed(results); n > 0 {
		return fmt.Errorf("%w: %d of %d %s", sentinel, n, len(results), what)
	}
	return nil
}
