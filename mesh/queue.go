package mesh

import "sync"

// queue is a bounded FIFO between any number of goroutines that push (the
// readers of a node's links) and any that pop. It grows as needed up to its
// limit, then push waits: that wait is the backpressure that reaches the
// peers. Every pop that frees space wakes every push that waits for it, so
// that no producer is left waiting on a queue that has room.
type queue[T any] struct {
	// mu guards the ring, the waiting count and the space channel.
	mu    sync.Mutex
	buf   []T
	head  int
	n     int
	limit int
	// waiting counts pushes blocked on a full queue; space is closed (and
	// replaced) to wake them all when a pop frees room.
	waiting int
	space   chan struct{}

	ready chan struct{} // a token when the queue stops being empty
}

func newQueue[T any](limit int) *queue[T] {
	return &queue[T]{buf: make([]T, min(limit, 64)), limit: limit,
		ready: make(chan struct{}, 1), space: make(chan struct{})}
}

// push appends vs in order, waiting while the queue is full; if stop closes
// first it returns how many it appended.
func (q *queue[T]) push(vs []T, stop <-chan struct{}) int {
	n := 0
	for n < len(vs) {
		q.mu.Lock()
		if k := min(q.limit-q.n, len(vs)-n); k > 0 {
			first := q.n == 0
			q.appendLocked(vs[n : n+k])
			n += k
			q.mu.Unlock()
			if first {
				signal(q.ready)
			}
			continue
		}
		q.waiting++
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-stop:
		}
		q.mu.Lock()
		q.waiting--
		q.mu.Unlock()
		select {
		case <-stop:
			return n
		default:
		}
	}
	return n
}

// pushOver appends v even past the limit: for the few values that must
// never wait (a node's peer events, which are bounded by their own count).
func (q *queue[T]) pushOver(v T) {
	q.mu.Lock()
	first := q.n == 0
	q.appendLocked([]T{v})
	q.mu.Unlock()
	if first {
		signal(q.ready)
	}
}

func (q *queue[T]) appendLocked(vs []T) {
	for len(q.buf)-q.n < len(vs) {
		q.grow(q.n + len(vs))
	}
	for _, v := range vs {
		i := q.head + q.n
		if i >= len(q.buf) {
			i -= len(q.buf)
		}
		q.buf[i] = v
		q.n++
	}
}

// grow makes room for at least need values: doubling up to the limit, and
// past it (pushOver) only as far as needed.
func (q *queue[T]) grow(need int) {
	nb := make([]T, max(min(2*len(q.buf), q.limit), need, 1))
	k := copy(nb, q.buf[q.head:])
	copy(nb[k:], q.buf[:q.head])
	q.buf, q.head = nb, 0
}

// popMany moves up to max of the oldest values to dst, in order, under one
// lock: a consumer that takes a batch at a time does not contend with the
// producers for every value.
func (q *queue[T]) popMany(dst []T, max int) []T {
	q.mu.Lock()
	k := min(q.n, max)
	if k == 0 {
		q.mu.Unlock()
		return dst
	}
	var zero T
	for range k {
		dst = append(dst, q.buf[q.head])
		q.buf[q.head] = zero
		q.head++
		if q.head == len(q.buf) {
			q.head = 0
		}
	}
	q.n -= k
	if q.waiting > 0 && q.n < q.limit {
		close(q.space)
		q.space = make(chan struct{})
	}
	q.mu.Unlock()
	return dst
}

// len returns how many values wait.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
