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

// paceSpec is what paceRun runs: for dur, sampling ages from the time from
// on (0: from the first tick); each, if set, runs at every tick after the
// positions are queued.
type paceSpec struct {
	dur, from time.Duration
	each      func(a *Lane) error
}

// paceRun streams 40 sequenced 26-byte positions a 60 Hz tick from a to b
// through w, and returns the age of the newest position b holds of each
// object, sampled every tick from sp.from on, a's lane, and how many
// flushes pacing held a message back at before sp.from.
func paceRun(t *testing.T, w *slowWire, cfg Config, sp paceSpec) ([]time.Duration, *Lane, uint64) {
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
	var pacedBefore uint64
	for now.Sub(start) < sp.dur {
		if !now.Before(nextTick) {
			for o := range objects {
				var p [26]byte
				binary.BigEndian.PutUint16(p[:], uint16(o))
				binary.BigEndian.PutUint64(p[2:], uint64(now.UnixNano()))
				if err := a.Enqueue(Sequenced, byte(o), p[:]); err != nil {
					t.Fatal(err)
				}
			}
			if sp.each != nil {
				if err := sp.each(a); err != nil {
					t.Fatalf("at %v: %v", now.Sub(start), err)
				}
			}
			if err := a.Flush(now); err != nil {
				t.Fatal(err)
			}
			if now.Sub(start) < sp.from {
				pacedBefore = a.Stats().Paced
			}
			if err := b.Flush(now); err != nil {
				t.Fatal(err)
			}
			if now.Sub(start) >= sp.from {
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
	return ages, a, pacedBefore
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
// keeps the path's queue short and every object's age bounded and flat from
// the first tick (start-up finds the path's rate before a deep queue
// builds); unpaced, the queue fills and stays full.
func TestPacingSlowPath(t *testing.T) {
	offered := float64(60 * (HeaderSize + 40*ItemSize(26) + 42))
	for _, queue := range []int{int(offered / 2 / 20), 64 << 10} { // 50 ms of the rate; a bloated 64 KiB
		w := &slowWire{rate: offered / 2, queueBytes: queue, delay: 3 * time.Millisecond}
		ages, a, _ := paceRun(t, w, testConfig(), paceSpec{dur: 10 * time.Second})
		st := a.Stats()
		if st.AcksRecv == 0 || st.PaceCuts == 0 || st.Paced == 0 {
			t.Fatalf("queue %d: pacing never engaged: %+v", queue, st)
		}
		n := len(ages)
		first, last := maxAge(ages[:n/3]), maxAge(ages[2*n/3:])
		t.Logf("queue %d: age p50 %v, p99 %v, max %v (first third %v, last %v), path queue wait max %v, drops %d, rate %d B/s, cuts %d",
			queue, pct(ages, 0.5), pct(ages, 0.99), maxAge(ages), first, last, w.maxWait, w.drops, st.PaceRate, st.PaceCuts)
		// From the first tick: a queue on the path of at most a few
		// PaceDelay (unpaced, or starting at full speed, the 64 KiB one
		// holds 1.8 s, 150 ms), and no object older than a few of its
		// turns through the path (two ticks a turn, at half the rate).
		if w.maxWait > 100*time.Millisecond {
			t.Errorf("queue %d: a datagram waited %v in the path's queue", queue, w.maxWait)
		}
		if m := maxAge(ages); m > 150*time.Millisecond {
			t.Errorf("queue %d: an object's age reached %v", queue, m)
		}
		if last > 150*time.Millisecond || last > 2*first+50*time.Millisecond {
			t.Errorf("queue %d: ages not bounded and flat: first third max %v, last third %v", queue, first, last)
		}

		// The same path unpaced: the queue fills.
		cfg := testConfig()
		cfg.PaceDelay = 0
		w = &slowWire{rate: offered / 2, queueBytes: queue, delay: 3 * time.Millisecond}
		ages, _, _ = paceRun(t, w, cfg, paceSpec{dur: 5 * time.Second})
		t.Logf("queue %d, unpaced: max age %v, path queue wait max %v", queue, maxAge(ages), w.maxWait)
	}
}

// A path with room to spare: start-up may hold a message back at its first
// few ticks (it begins at paceStartRate, under what the game sends, and
// grows at each ack), never after; then the limit is lifted.
func TestPacingFastPath(t *testing.T) {
	offered := float64(60 * (HeaderSize + 40*ItemSize(26) + 42))
	w := &slowWire{rate: 4 * offered, queueBytes: 64 << 10, delay: 3 * time.Millisecond}
	ages, a, early := paceRun(t, w, testConfig(), paceSpec{dur: 5 * time.Second, from: 150 * time.Millisecond})
	st := a.Stats()
	t.Logf("held back at %d flushes in the first 150 ms, %d after", early, st.Paced-early)
	if st.Paced != early || early > 4 || st.PaceCuts != 0 || st.PaceRate != 0 || st.AcksRecv == 0 {
		t.Fatalf("held back at %d flushes in the first 150 ms; stats %+v", early, st)
	}
	if m := maxAge(ages); m > 2*time.Second/60+10*time.Millisecond {
		t.Fatalf("max age %v on a fast path after start-up", m)
	}
}

// Start-up holds sequenced messages to its limit, but never unreliable
// ones: a tick's burst that fills the unreliable queue goes at once, not
// refused at the next tick.
func TestPacingStartupUnreliable(t *testing.T) {
	offered := float64(60 * (HeaderSize + 40*ItemSize(26) + 42))
	w := &slowWire{rate: 40 * offered, queueBytes: 1 << 20, delay: 3 * time.Millisecond}
	cfg := testConfig()
	payload := make([]byte, 26)
	_, a, _ := paceRun(t, w, cfg, paceSpec{dur: 300 * time.Millisecond, each: func(a *Lane) error {
		if a.State() != Up {
			return nil // queued for the link until the first pong
		}
		for range cfg.UnreliableQueue {
			if err := a.Enqueue(Unreliable, 1, payload); err != nil {
				return err
			}
		}
		return nil
	}})
	if st := a.Stats(); st.DropQueueFull != 0 || st.Paced == 0 {
		t.Fatalf("want no unreliable refused, and start-up to hold sequenced back: %+v", st)
	}
}

// A lane starts up at its first message and again after paceIdleAt with
// none (a pause of the game, a fallback to the link and back); a start-up
// limit that does not bind is lifted.
func TestPacerStartup(t *testing.T) {
	p := pacer{delay: 10 * time.Millisecond}
	t0 := time.Unix(1000, 0)
	if n, free := p.budget(t0); n != paceStartBurst || !free || p.rate != paceStartRate {
		t.Fatalf("first budget %d, %v, rate %v: want start-up's", n, free, p.rate)
	}
	p.emitted(0, 100, true, t0)
	if n, free := p.budget(t0.Add(paceStartFree + time.Millisecond)); n != -1 || free || p.startup {
		t.Fatalf("a start-up limit that never bound: budget %d, %v, start-up %v", n, free, p.startup)
	}
	at := t0.Add(paceIdleAt)
	p.emitted(1, 100, true, at)
	if n, _ := p.budget(at.Add(paceIdleAt)); n != -1 {
		t.Fatalf("budget %d after %v idle: want none", n, paceIdleAt)
	}
	p.emitted(2, 100, false, at.Add(paceIdleAt+time.Millisecond)) // a ping: no message
	if _, free := p.budget(at.Add(paceIdleAt + 2*time.Millisecond)); !free || p.rate != paceStartRate {
		t.Fatalf("after an idle of over %v: rate %v, start-up %v", paceIdleAt, p.rate, p.startup)
	}
}
