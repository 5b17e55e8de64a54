package lane

import "time"

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

	cuts uint64
}

// emitted records a datagram sent.
func (p *pacer) emitted(counter uint64, size int, now time.Time) {
	e := &p.sent[counter%paceLog]
	e.counter, e.at = counter, now
	if p.rate > 0 {
		p.credit -= float64(size)
	}
}

// budget returns how many bytes of messages may go at now: -1 for no limit.
func (p *pacer) budget(now time.Time) int {
	if p.rate == 0 {
		return -1
	}
	if !p.creditAt.IsZero() {
		p.credit += p.rate * now.Sub(p.creditAt).Seconds()
	}
	p.creditAt = now
	p.credit = min(p.credit, max(p.rate*paceBurst.Seconds(), 1))
	if now.Sub(p.boundAt) > paceFreeAt {
		p.rate = 0 // the limit has not bound for a while: the path has room
		return -1
	}
	if p.credit <= 0 {
		return 0
	}
	return int(p.credit)
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
	if p.nrtt < paceSamples {
		return
	}
	queue := p.rtts[0]
	for _, r := range p.rtts[1:] {
		queue = min(queue, r)
	}
	queue -= p.minRTT
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
