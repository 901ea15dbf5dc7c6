package pgstore

// recordQueue holds the records the database has not stored yet, in
// arrival order, in chunks of one batch each. A boot storm puts tens of
// thousands of records in it while each send takes a batch from the front;
// as one flat slice, every append past its capacity and every send's
// re-slicing copied all that waited (a quarter of the store's CPU in the
// storm benchmark). Here adding copies only what is added, a batch is taken
// from the front without moving the rest, and an emptied chunk is reused.
// Its owner serialises access (spoolMu); a slice front returned stays valid
// while push appends, until pop.
type recordQueue struct {
	chunks [][]record // each of capacity chunk; every one but the last is full
	head   int        // records at the start of chunks[0] already popped
	n      int
	chunk  int
	free   []record // one emptied chunk, kept for the next push
}

func newRecordQueue(chunk int) recordQueue { return recordQueue{chunk: max(chunk, 1)} }

// Len is the number of records waiting.
func (q *recordQueue) Len() int { return q.n }

// push appends rs (copied).
func (q *recordQueue) push(rs []record) {
	for len(rs) > 0 {
		last := len(q.chunks) - 1
		if last < 0 || len(q.chunks[last]) == cap(q.chunks[last]) {
			c := q.free
			q.free = nil
			if c == nil {
				c = make([]record, 0, q.chunk)
			}
			q.chunks = append(q.chunks, c)
			last++
		}
		c := q.chunks[last]
		k := min(len(rs), cap(c)-len(c))
		q.chunks[last] = append(c, rs[:k]...)
		rs = rs[k:]
		q.n += k
	}
}

// front returns up to limit records from the front, in order, without
// removing them: at most what is left of the first chunk.
func (q *recordQueue) front(limit int) []record {
	if q.n == 0 {
		return nil
	}
	c := q.chunks[0]
	return c[q.head:min(len(c), q.head+limit)]
}

// pop removes the first n records, n at most len(front(…)).
func (q *recordQueue) pop(n int) {
	if n <= 0 {
		return
	}
	c := q.chunks[0]
	clear(c[q.head : q.head+n]) // let the strings go
	q.head += n
	q.n -= n
	if q.head < len(c) {
		return
	}
	q.head = 0
	if len(q.chunks) == 1 { // the only chunk, all taken: start it over
		q.chunks[0] = c[:0]
		return
	}
	q.chunks[0] = nil
	q.chunks = q.chunks[1:]
	q.free = c[:0]
}

// each calls fn with every waiting record, in order.
func (q *recordQueue) each(fn func(*record)) {
	for i, c := range q.chunks {
		from := 0
		if i == 0 {
			from = q.head
		}
		for j := from; j < len(c); j++ {
			fn(&c[j])
		}
	}
}
