//go:build race

package mesh

// raceOn: the race detector is on. It makes sync.Pool drop a share of what
// is put back, so a path that reuses pooled buffers allocates now and then.
const raceOn = true
