package lane

import (
	"math"
	"time"
)

// Pacing (SPEC.md section 11.9): a lane sends no faster than its path
// carries, so that nothing it sent waits in a queue on the way (a slow
// Wi-Fi station, a tbf, a bloated access point): whatever would wait there
// stays in the sender's queue instead, where a sequenced channel's newer
// message replaces it. The receiver acks at each flush the newest datagram
// it accepted, how long it held it and how many bytes it has accepted; the
// sender takes from each ack a round trip and, over 50 ms or more, the rate
// its datagrams are delivered at.
// At each ack it looks at the smallest of the last paceSamples round trips:
// more than PaceDelay above the smallest of the last 10 s is a queue on the
// path, and the sender (at most once per paceCutEvery) limits itself to the
// delivery rate, less what drains that queue within paceDrain; a queue
// under half PaceDelay while the limit binds raises the limit by paceRaise
// (paceRecover while it is well under what the path delivered in the last
// second); a limit that has not bound for a second is lifted. Judging by the
// smallest of a few round trips keeps a short stall of either program (a
// reader that runs late makes a round trip or two long, not all) from
// passing for a queue.
//
// Start-up: the first acks come a round trip after the first messages,
// and on a slow path with a deep queue (a bloated access point) whatever
// the sender put on it at full speed in the meantime waits there, and
// every newer message behind it. So a lane starts up (at its first
// message, and again after paceIdleAt with none, which covers a fallback
// to the link and back) as TCP's slow start and BBR's startup do: at
// paceStartRate with paceStartBurst of credit, the limit doubling every
// smallest round trip (at each ack, at most paceStartGrow, and never over
// 1.5 times the delivery rate) while the ack's round trip is within PaceDelay
// / 2 of the path's own. A fast path is at full speed within a few acks
// (the receiver acks once a tick: a few ticks); a slow one gets no deep
// queue. The first queue delay over PaceDelay, judged by the smallest of
// the last paceStartSamples round trips (fewer than in steady state: the
// queue start-up made grows for as long as it goes unseen), ends start-up
// with a cut to half the lesser of the delivery rate and the limit, which
// drains what start-up queued; the rules above follow. A start-up limit
// that has held nothing back for paceStartFree is lifted: the path has
// room for all the lane sends. Unreliable messages are not held back in
// start-up (a limit that is only a guess must not make a burst of them
// overflow the queue and be refused); their bytes use up credit all the
// same, so sequenced messages wait for them.

const (
	paceLog      = 64                     // datagrams remembered for the round trip of an ack
	paceMinRTTAt = 10 * time.Second       // a smallest round trip older than this is forgotten
	paceRateAt   = 50 * time.Millisecond  // the shortest interval a delivery rate is taken over
	paceRateKeep = time.Second            // the highest delivery rate of this long counts
	paceDrain    = 200 * time.Millisecond // a queue seen is drained within this
	paceSamples  = 3                      // round trips judged together
	paceCutEvery = 100 * time.Millisecond // one cut per this: a cut shows at the receiver a round trip later
	paceRaise    = 1.01                   // a limit that binds with no queue grows this much an ack
	paceRecover  = 1.05                   // or this much while under 80% of the highest delivery rate of late
	paceFreeAt   = time.Second            // a limit that has not bound for this long is lifted
	paceMinRate  = 8192                   // bytes a second: a limit never goes below this
	paceBurst    = 40 * time.Millisecond  // credit kept at most, at the limit's rate

	paceStartRate    = 8 << 10                // bytes a second: start-up's first limit
	paceStartBurst   = 2400                   // bytes of credit start-up begins with (and may keep)
	paceStartGrow    = 4                      // start-up's limit grows at most this much an ack
	paceStartFree    = 100 * time.Millisecond // a start-up limit that has not bound for this long is lifted
	paceStartSamples = 2                      // round trips judged together in start-up
	paceStartMax     = 1 << 34                // bytes a second: start-up's limit grows no higher
	paceIdleAt       = time.Second            // no message for this long: the next starts up again
)

// pacer is a lane's sending rate. Time comes from its caller. Not safe for
// concurrent use: Lane guards it with liveMu.
type pacer struct {
	delay time.Duration // Config.PaceDelay; 0 disables pacing

	sent [paceLog]struct {
		counter uint64
		at      time.Time
	}

	minRTT   time.Duration // the path's own: the smallest of the last paceMinRTTAt
	minRTTAt time.Time

	// The last paceSamples round trips.
	rtts  [paceSamples]time.Duration
	nrtt  int
	cutAt time.Time

	// The delivery rate, from the acks' byte counts: the last measure and
	// the highest of the last paceRateKeep (and of the one before, so that
	// the highest never drops to nothing at a boundary).
	rateBytes uint32
	rateAt    time.Time
	maxRate   [2]float64
	lastRate  float64
	maxAt     time.Time

	rate     float64 // the limit, bytes a second; 0: none
	credit   float64 // bytes that may still go at the limit
	creditAt time.Time
	boundAt  time.Time // when the limit last held a message back

	startup bool      // the limit is start-up's
	growAt  time.Time // when start-up's limit last grew
	msgAt   time.Time // when a datagram last carried a message

	cuts uint64
}

// emitted records a datagram sent; app: it carried a message.
func (p *pacer) emitted(counter uint64, size int, app bool, now time.Time) {
	e := &p.sent[counter%paceLog]
	e.counter, e.at = counter, now
	if p.rate > 0 {
		p.credit -= float64(size)
	}
	if app {
		p.msgAt = now
	}
}

// budget returns how many bytes of messages may go at now (-1 for no
// limit), and whether unreliable messages go outside it (in start-up).
func (p *pacer) budget(now time.Time) (n int, unreliableFree bool) {
	if p.delay <= 0 {
		return -1, false
	}
	if p.msgAt.IsZero() || now.Sub(p.msgAt) > paceIdleAt {
		p.start(now)
	}
	if p.rate == 0 {
		return -1, false
	}
	if !p.creditAt.IsZero() {
		p.credit += p.rate * now.Sub(p.creditAt).Seconds()
	}
	p.creditAt = now
	keep, free := max(p.rate*paceBurst.Seconds(), 1), paceFreeAt
	if p.startup {
		keep, free = max(keep, paceStartBurst), paceStartFree
	}
	p.credit = min(p.credit, keep)
	if now.Sub(p.boundAt) > free {
		// The limit has not bound for a while: the path has room.
		p.rate, p.startup = 0, false
		return -1, false
	}
	if p.credit <= 0 {
		return 0, p.startup
	}
	return int(p.credit), p.startup
}

// start begins a start-up at now: what the pacer knew of the path's queue
// and delivery rate is forgotten (its smallest round trip ages out on its
// own).
func (p *pacer) start(now time.Time) {
	p.startup = true
	p.rate, p.credit, p.creditAt = paceStartRate, paceStartBurst, now
	p.boundAt, p.growAt = now, now
	p.nrtt = 0
	p.rateAt, p.maxRate, p.lastRate, p.maxAt = time.Time{}, [2]float64{}, 0, now
}

// bound notes that the limit held a message back at now.
func (p *pacer) bound(now time.Time) { p.boundAt = now }

// delivered returns the delivery rate: the last measure, but never under
// half the highest of the last second (a receiver that read late makes one
// measure low); 0 before the first.
func (p *pacer) delivered() float64 {
	return max(p.lastRate, max(p.maxRate[0], p.maxRate[1])/2)
}

// ack takes an ack of the datagram whose counter's low 32 bits are counter,
// held held before the ack left, with received bytes accepted so far.
func (p *pacer) ack(counter uint32, held time.Duration, received uint32, now time.Time) {
	if p.delay <= 0 {
		return
	}
	if p.rateAt.IsZero() {
		p.rateBytes, p.rateAt = received, now
	} else if d := now.Sub(p.rateAt); d >= paceRateAt {
		r := float64(received-p.rateBytes) / d.Seconds()
		p.rateBytes, p.rateAt = received, now
		if now.Sub(p.maxAt) >= paceRateKeep {
			p.maxRate[0], p.maxRate[1], p.maxAt = p.maxRate[1], 0, now
		}
		p.maxRate[1] = max(p.maxRate[1], r)
		p.lastRate = r
	}
	e := &p.sent[counter%paceLog]
	if uint32(e.counter) != counter || e.at.IsZero() {
		return // too old to be in the log
	}
	rtt := max(now.Sub(e.at)-held, 0)
	if p.minRTT == 0 || rtt <= p.minRTT || now.Sub(p.minRTTAt) > paceMinRTTAt {
		p.minRTT, p.minRTTAt = rtt, now
	}
	p.rtts[p.nrtt%paceSamples] = rtt
	p.nrtt++
	if p.nrtt < paceSamples && !p.startup {
		return
	}
	samples := paceSamples
	if p.startup {
		samples = paceStartSamples
	}
	queue := rtt
	for i := 1; i < min(p.nrtt, samples); i++ {
		queue = min(queue, p.rtts[(p.nrtt-1-i)%paceSamples])
	}
	queue -= p.minRTT
	if p.startup {
		p.startAck(queue, rtt-p.minRTT, now)
		return
	}
	switch {
	case queue > p.delay && p.delivered() > 0 && now.Sub(p.cutAt) >= paceCutEvery:
		// A queue on the path: send at the rate it delivers, less what
		// drains the queue.
		keep := max(1-queue.Seconds()/paceDrain.Seconds(), 0.5)
		rate := max(p.delivered()*keep, paceMinRate)
		if p.rate == 0 || rate < p.rate {
			p.rate = rate
		}
		p.credit = min(p.credit, 0)
		p.cutAt, p.boundAt = now, now
		p.cuts++
	case queue <= p.delay/2 && p.rate > 0 && now.Sub(p.boundAt) < paceCutEvery:
		// No queue, and the limit binds: probe for more; quickly back up
		// to what the path delivered lately (a cut for a stall of either
		// program, not for the path, is undone within a few ticks).
		if high := max(p.maxRate[0], p.maxRate[1]); p.rate < 0.8*high {
			p.rate = min(p.rate*paceRecover, 0.8*high)
		} else {
			p.rate *= paceRaise
		}
	}
}

// startAck takes an ack in start-up: the queue delay of the smallest of the
// last paceStartSamples round trips, and that of this ack's alone.
func (p *pacer) startAck(queue, last time.Duration, now time.Time) {
	switch {
	case queue > p.delay:
		// The first sign of a queue: start-up is over. Cut to half of
		// what the path delivers (or of the limit, if less or before the
		// first measure), which drains the queue start-up made however
		// deep the late round trips will show it.
		p.startup = false
		rate := p.rate
		if d := p.delivered(); d > 0 {
			rate = min(rate, d)
		}
		rate /= 2
		p.rate = max(rate, paceMinRate)
		p.credit = min(p.credit, 0)
		p.cutAt, p.boundAt = now, now
		p.cuts++
	case last <= p.delay/2:
		// No queue, not even in this round trip alone (growing on the
		// first hint of one would fill it before the next acks tell):
		// double the limit every smallest round trip.
		rtt := max(p.minRTT, time.Millisecond)
		grow := math.Exp2(now.Sub(p.growAt).Seconds() / rtt.Seconds())
		rate := min(p.rate*min(grow, paceStartGrow), paceStartMax)
		if d := p.delivered(); d > 0 {
			// No faster than 1.5 times what the path delivered: the
			// round trips tell of a queue a round trip late.
			rate = min(rate, max(1.5*d, p.rate))
		}
		p.rate, p.growAt = rate, now
	}
}
