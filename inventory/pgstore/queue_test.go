package pgstore

import (
	"fmt"
	"testing"
)

// The queue against a plain slice, over pushes and pops of every size
// around the chunk: same records, same order, front never past a chunk,
// and a front that push does not disturb.
func TestRecordQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chunk int
		ops   []int // > 0 push that many; < 0 pop up to that many through front
	}{
		{"empty", 4, nil},
		{"one chunk", 4, []int{3, -3}},
		{"exactly a chunk", 4, []int{4, -4, 4, -4}},
		{"across chunks", 4, []int{10, -4, -4, -4}},
		{"partial pops", 4, []int{6, -1, -1, 3, -10, -10, -10}},
		{"refill the only chunk", 3, []int{2, -2, 2, 2, -3, -3}},
		{"big pushes", 5, []int{23, -2, 17, -100, -100, -100, -100, -100, -100, -100, -100, -100}},
		{"chunk of one", 1, []int{3, -2, 2, -1, -1, -1, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newRecordQueue(tc.chunk)
			var want []record
			next := 0
			for _, op := range tc.ops {
				if op > 0 {
					rs := make([]record, op)
					for i := range rs {
						rs[i].Key = fmt.Sprint(next)
						next++
					}
					before := q.front(tc.chunk)
					firstKey := ""
					if len(before) > 0 {
						firstKey = before[0].Key
					}
					q.push(rs)
					if len(before) > 0 && before[0].Key != firstKey {
						t.Fatalf("push moved the front")
					}
					want = append(want, rs...)
					continue
				}
				f := q.front(-op)
				if len(f) > tc.chunk || len(f) > -op || (len(f) == 0 && len(want) > 0) {
					t.Fatalf("front(%d) gave %d records with %d waiting", -op, len(f), len(want))
				}
				for i := range f {
					if f[i].Key != want[i].Key {
						t.Fatalf("front[%d] = %q, want %q", i, f[i].Key, want[i].Key)
					}
				}
				q.pop(len(f))
				want = want[len(f):]
			}
			if q.Len() != len(want) {
				t.Fatalf("Len %d, want %d", q.Len(), len(want))
			}
			i := 0
			q.each(func(r *record) {
				if i >= len(want) || r.Key != want[i].Key {
					t.Fatalf("each: record %d is %q", i, r.Key)
				}
				i++
			})
			if i != len(want) {
				t.Fatalf("each saw %d of %d", i, len(want))
			}
		})
	}
}
