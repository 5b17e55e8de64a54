package lane

import (
	"fmt"
	"time"
)

// Limits of Config.MTU.
const (
	// DefaultMTU keeps a datagram, with its IPv6 and UDP headers, inside
	// the smallest MTU links on a LAN have in practice (1280 for IPv6), so
	// no datagram is ever fragmented.
	DefaultMTU = 1200
	// MinMTU leaves room for a header, a tag and a useful message.
	MinMTU = 256
	// MaxMTU is the most a UDP datagram over IPv4 carries.
	MaxMTU = 65507
)

// Config holds a lane's limits and the thresholds of its liveness check.
// The zero value is not valid; start from DefaultConfig.
type Config struct {
	// MTU is the largest datagram the lane sends, header and tag included.
	// Default 1200. Larger packs more messages a datagram but risks IP
	// fragmentation (one lost fragment loses the datagram); smaller wastes
	// less when a datagram is lost.
	MTU int
	// UnreliableQueue is how many unreliable messages wait for the next
	// Flush; more are dropped (Enqueue returns ErrQueueFull and counts the
	// drop). Default 256: four datagrams' worth of 24-byte messages at 60
	// flushes a second is far less; a game that overflows it sends faster
	// than it flushes.
	UnreliableQueue int
	// PingInterval is how often the lane pings the peer. Default 500 ms.
	// Shorter notices a blocked lane sooner and measures RTT more often, at
	// 23 to 39 bytes a ping.
	PingInterval time.Duration
	// BlockedPings and BlockedAfter: the lane is Blocked when at least
	// BlockedPings pings have gone unanswered and no pong has come for
	// BlockedAfter (or since the lane started). Defaults 4 and 2 s: a lost
	// datagram or two never flips the lane; a firewall that drops UDP is
	// noticed within about 2 s.
	BlockedPings int
	BlockedAfter time.Duration
	// PaceDelay: a round trip longer than the smallest seen by more than
	// this is a queue on the path, and the lane slows to what the path
	// delivers (SPEC.md section 11.9). Default 10 ms: well under the
	// shortest queue a slow link keeps (a tbf of 50 ms), above a LAN's
	// jitter. Shorter keeps queues shorter but mistakes more jitter (or a
	// receiver that reads late) for a queue; 0 turns pacing off. A lane
	// also starts up slowly, at its first message and after a second
	// with none, growing its limit at each ack until the round trips rise
	// by PaceDelay or the limit no longer binds (a few ticks on a LAN):
	// sequenced messages may wait a tick then, unreliable ones never do.
	PaceDelay time.Duration
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		MTU:             DefaultMTU,
		UnreliableQueue: 256,
		PingInterval:    500 * time.Millisecond,
		BlockedPings:    4,
		BlockedAfter:    2 * time.Second,
		PaceDelay:       10 * time.Millisecond,
	}
}

// Validate reports the first field out of range, wrapping ErrConfig.
func (c Config) Validate() error {
	switch {
	case c.MTU < MinMTU || c.MTU > MaxMTU:
		return fmt.Errorf("%w: MTU %d (want %d..%d; %d avoids fragmentation)", ErrConfig, c.MTU, MinMTU, MaxMTU, DefaultMTU)
	case c.UnreliableQueue < 1:
		return fmt.Errorf("%w: UnreliableQueue %d (want at least 1)", ErrConfig, c.UnreliableQueue)
	case c.PingInterval <= 0:
		return fmt.Errorf("%w: PingInterval %v (want more than 0)", ErrConfig, c.PingInterval)
	case c.BlockedPings < 1:
		return fmt.Errorf("%w: BlockedPings %d (want at least 1)", ErrConfig, c.BlockedPings)
	case c.PaceDelay < 0:
		return fmt.Errorf("%w: PaceDelay %v (want 0, off, or more)", ErrConfig, c.PaceDelay)
	case c.BlockedAfter < c.PingInterval:
		return fmt.Errorf("%w: BlockedAfter %v is shorter than PingInterval %v", ErrConfig, c.BlockedAfter, c.PingInterval)
	}
	return nil
}

// MaxPayload is the largest message payload one datagram of this lane
// carries, keyed or not.
func (c Config) MaxPayload(keyed bool) int {
	room := c.MTU - HeaderSize
	if keyed {
		room -= TagSize
	}
	n := min(room-MinItemHeader, maxLength)
	for ItemSize(n) > room {
		n--
	}
	return n
}
