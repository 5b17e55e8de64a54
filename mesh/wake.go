package mesh

// signal leaves a wake-up token in c (a channel of capacity 1) unless one
// is there already: the waiter, whenever it looks, re-checks what it waits
// for. It never blocks.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
