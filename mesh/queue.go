package mesh

import "sync"

// queue is a bounded FIFO between one goroutine that pushes (a link's reader)
// and any that pop. It grows as needed up to its limit, then push waits: that
// wait is the backpressure that reaches the peer.
type queue[T any] struct {
	// mu guards the ring.
	mu    sync.Mutex
	buf   []T
	head  int
	n     int
	limit int

	ready chan struct{} // a token when the queue stops being empty
	space chan struct{} // a token when the queue stops being full
}

func newQueue[T any](limit int) *queue[T] {
	return &queue[T]{buf: make([]T, min(limit, 64)), limit: limit,
		ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends vs in order, waiting while the queue is full; if stop closes
// first it returns how many it appended.
func (q *queue[T]) push(vs []T, stop <-chan struct{}) int {
	n := 0
	for n < len(vs) {
		q.mu.Lock()
		if k := min(q.limit-q.n, len(vs)-n); k > 0 {
			for len(q.buf)-q.n < k {
				q.grow()
			}
			first := q.n == 0
			for _, v := range vs[n : n+k] {
				i := q.head + q.n
				if i >= len(q.buf) {
					i -= len(q.buf)
				}
				q.buf[i] = v
				q.n++
			}
			n += k
			q.mu.Unlock()
			if first {
				signal(q.ready)
			}
			continue
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-stop:
			return n
		}
	}
	return n
}

func (q *queue[T]) grow() {
	nb := make([]T, min(2*len(q.buf), q.limit))
	k := copy(nb, q.buf[q.head:])
	copy(nb[k:], q.buf[:q.head])
	q.buf, q.head = nb, 0
}

// popMany moves up to max of the oldest values to dst, in order, under one
// lock: a consumer that takes a batch at a time does not contend with the
// producer for every value.
func (q *queue[T]) popMany(dst []T, max int) []T {
	q.mu.Lock()
	k := min(q.n, max)
	if k == 0 {
		q.mu.Unlock()
		return dst
	}
	wasFull := q.n == q.limit
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
	q.mu.Unlock()
	if wasFull {
		signal(q.space)
	}
	return dst
}

// len returns how many values wait.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
