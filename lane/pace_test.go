package lane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// slowWire is a simulated path from a to b: a rate, a drop-tail queue of
// queueBytes and a fixed delay each way. The way back (acks, pongs) is
// fast. Time is the test's, in steps of a millisecond.
type slowWire struct {
	rate       float64 // bytes a second
	queueBytes int
	delay      time.Duration

	queue   [][]byte
	queued  int
	busyTil time.Time
	flying  []timed // left the queue, arriving at b at .at
	back    []timed // b to a
	maxWait time.Duration
	enqAt   []time.Time
	drops   int
}

type timed struct {
	at time.Time
	b  []byte
}

func (w *slowWire) sendAB(b []byte, now time.Time) {
	if w.queued+len(b) > w.queueBytes {
		w.drops++
		return
	}
	w.queue = append(w.queue, bytes.Clone(b))
	w.enqAt = append(w.enqAt, now)
	w.queued += len(b)
}

// run moves the wire to now: the queue's head goes out when the wire is
// free, taking len/rate to cross.
func (w *slowWire) run(now time.Time) {
	for len(w.queue) > 0 && !w.busyTil.After(now) {
		b := w.queue[0]
		start := w.busyTil
		if start.Before(w.enqAt[0]) {
			start = w.enqAt[0]
		}
		w.maxWait = max(w.maxWait, start.Sub(w.enqAt[0]))
		w.busyTil = start.Add(time.Duration(float64(len(b)+42) / w.rate * float64(time.Second)))
		w.flying = append(w.flying, timed{w.busyTil.Add(w.delay), b})
		w.queue, w.enqAt = w.queue[1:], w.enqAt[1:]
		w.queued -= len(b)
	}
}

func due(q []timed, now time.Time) (ready [][]byte, rest []timed) {
	for _, t := range q {
		if !t.at.After(now) {
			ready = append(ready, t.b)
		} else {
			rest = append(rest, t)
		}
	}
	return ready, rest
}

// paceRun streams 40 sequenced 26-byte positions a 60 Hz tick from a to b
// through w for dur, and returns the age of the newest position b holds of
// each object, sampled every tick after the first second, and a's lane.
func paceRun(t *testing.T, w *slowWire, cfg Config, dur time.Duration) ([]time.Duration, *Lane) {
	t.Helper()
	now := time.Unix(1000, 0)
	sa, sb := pair(t, false)
	a, err := New(cfg, sa, func(b []byte) error { w.sendAB(b, now); return nil })
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, sb, func(p []byte) error {
		w.back = append(w.back, timed{now.Add(w.delay), bytes.Clone(p)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const objects = 40
	tick := time.Second / 60
	newest := make([]time.Time, objects)
	var ages []time.Duration
	start, nextTick := now, now
	var out []Message
	for now.Sub(start) < dur {
		if !now.Before(nextTick) {
			for o := range objects {
				var p [26]byte
				binary.BigEndian.PutUint16(p[:], uint16(o))
				binary.BigEndian.PutUint64(p[2:], uint64(now.UnixNano()))
				if err := a.Enqueue(Sequenced, byte(o), p[:]); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Flush(now); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(now); err != nil {
				t.Fatal(err)
			}
			if now.Sub(start) > time.Second {
				for _, n := range newest {
					if !n.IsZero() {
						ages = append(ages, now.Sub(n))
					}
				}
			}
			nextTick = nextTick.Add(tick)
		}
		w.run(now)
		var ready [][]byte
		ready, w.flying = due(w.flying, now)
		for _, p := range ready {
			if out, err = b.Receive(p, netip.AddrPort{}, now, out[:0]); err != nil {
				t.Fatal(err)
			}
			for _, m := range out {
				o := binary.BigEndian.Uint16(m.Payload)
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload[2:])))
				if sent.After(newest[o]) {
					newest[o] = sent
				}
			}
		}
		ready, w.back = due(w.back, now)
		for _, p := range ready {
			if _, err := a.Receive(p, netip.AddrPort{}, now, nil); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(time.Millisecond)
	}
	return ages, a
}

func pct(ages []time.Duration, p float64) time.Duration {
	s := slices.Clone(ages)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func maxAge(ages []time.Duration) time.Duration {
	var m time.Duration
	for _, a := range ages {
		m = max(m, a)
	}
	return m
}

// Through a path that carries half of what the game sends, the paced lane
// keeps the path's queue short and every object's age bounded and flat;
// unpaced, the queue fills and stays full.
func TestPacingSlowPath(t *testing.T) {
	offered := float64(60 * (HeaderSize + 40*ItemSize(26) + 42))
	for _, queue := range []int{int(offered / 2 / 20), 64 << 10} { // 50 ms of the rate; a bloated 64 KiB
		w := &slowWire{rate: offered / 2, queueBytes: queue, delay: 3 * time.Millisecond}
		ages, a := paceRun(t, w, testConfig(), 10*time.Second)
		st := a.Stats()
		if st.AcksRecv == 0 || st.PaceCuts == 0 || st.Paced == 0 {
			t.Fatalf("queue %d: pacing never engaged: %+v", queue, st)
		}
		// After the first second: a queue of at most about two PaceDelay,
		// and no object older than a few of its turns through the path.
		if w.maxWait > 250*time.Millisecond {
			t.Errorf("queue %d: a datagram waited %v in the path's queue", queue, w.maxWait)
		}
		n := len(ages)
		first, last := maxAge(ages[:n/3]), maxAge(ages[2*n/3:])
		t.Logf("queue %d: age p50 %v, p99 %v, max %v (first third %v, last %v), path queue wait max %v, drops %d, rate %d B/s, cuts %d",
			queue, pct(ages, 0.5), pct(ages, 0.99), maxAge(ages), first, last, w.maxWait, w.drops, st.PaceRate, st.PaceCuts)
		if last > 150*time.Millisecond || last > 2*first+50*time.Millisecond {
			t.Errorf("queue %d: ages not bounded and flat: first third max %v, last third %v", queue, first, last)
		}

		// The same path unpaced: the queue fills.
		cfg := testConfig()
		cfg.PaceDelay = 0
		w = &slowWire{rate: offered / 2, queueBytes: queue, delay: 3 * time.Millisecond}
		ages, _ = paceRun(t, w, cfg, 5*time.Second)
		t.Logf("queue %d, unpaced: max age %v, path queue wait max %v", queue, maxAge(ages), w.maxWait)
	}
}

// A path with room to spare: nothing is held back.
func TestPacingFastPath(t *testing.T) {
	offered := float64(60 * (HeaderSize + 40*ItemSize(26) + 42))
	w := &slowWire{rate: 4 * offered, queueBytes: 64 << 10, delay: 3 * time.Millisecond}
	ages, a := paceRun(t, w, testConfig(), 5*time.Second)
	if st := a.Stats(); st.Paced != 0 || st.PaceCuts != 0 || st.AcksRecv == 0 {
		t.Fatalf("stats %+v", st)
	}
	if m := maxAge(ages); m > 2*time.Second/60+10*time.Millisecond {
		t.Fatalf("max age %v on a fast path", m)
	}
}
