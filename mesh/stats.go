package mesh

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a link's counters.
type Stats struct {
	// RTT is the smoothed round-trip time, RTTVar its mean deviation, as TCP
	// (RFC 6298), ENet and yojimbo smooth them: each ping's sample moves RTT
	// by 1/8 and RTTVar by 1/4. Both are 0 until the first pong.
	RTT, RTTVar time.Duration
	// RTTSamples counts the pongs measured.
	RTTSamples uint64
	// BytesIn and BytesOut count bytes on the wire after the handshake,
	// control frames included.
	BytesIn, BytesOut uint64
	// MsgsIn counts application messages received, MsgsOut those Send
	// accepted. Control frames (ping, pong, bye) are not counted.
	MsgsIn, MsgsOut uint64
	// Dropped counts frames received and skipped: of an unknown type, or
	// arriving after Close with the receive queue full. (A malformed frame
	// closes the link with ErrProtocol.)
	Dropped uint64
}

// linkStats holds a link's counters. The reader goroutine alone writes the
// RTT fields; everything is atomic so Stats never takes a lock.
type linkStats struct {
	srtt, rttvar      atomic.Int64 // nanoseconds
	samples           atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	msgsIn, msgsOut   atomic.Uint64
	dropped           atomic.Uint64
}

// addRTT folds in one sample, as RFC 6298 section 2 does.
func (s *linkStats) addRTT(r time.Duration) {
	if s.samples.Load() == 0 {
		s.srtt.Store(int64(r))
		s.rttvar.Store(int64(r / 2))
	} else {
		srtt, rttvar := time.Duration(s.srtt.Load()), time.Duration(s.rttvar.Load())
		diff := srtt - r
		if diff < 0 {
			diff = -diff
		}
		s.rttvar.Store(int64(rttvar - rttvar/4 + diff/4))
		s.srtt.Store(int64(srtt - srtt/8 + r/8))
	}
	s.samples.Add(1)
}

func (s *linkStats) snapshot() Stats {
	return Stats{
		RTT:        time.Duration(s.srtt.Load()),
		RTTVar:     time.Duration(s.rttvar.Load()),
		RTTSamples: s.samples.Load(),
		BytesIn:    s.bytesIn.Load(),
		BytesOut:   s.bytesOut.Load(),
		MsgsIn:     s.msgsIn.Load(),
		MsgsOut:    s.msgsOut.Load(),
		Dropped:    s.dropped.Load(),
	}
}
