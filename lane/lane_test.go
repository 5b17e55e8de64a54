package lane

import (
	"bytes"
	"testing"
	"time"
)

// memLink joins two lanes in memory: what one flushes the other receives,
// unless the link is blocked. Time is the test's.
type memLink struct {
	t       *testing.T
	a, b    *Lane
	blocked bool
	now     time.Time
	toA     [][]byte
	toB     [][]byte
	gotA    []Message
	gotB    []Message
}

func newMemLink(t *testing.T, keyed bool, cfg Config) *memLink {
	m := &memLink{t: t, now: time.Unix(1000, 0)}
	sa, sb := pair(t, keyed)
	var err error
	m.a, err = New(cfg, sa, func(b []byte) error {
		if !m.blocked {
			m.toB = append(m.toB, bytes.Clone(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.b, err = New(cfg, sb, func(b []byte) error {
		if !m.blocked {
			m.toA = append(m.toA, bytes.Clone(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// step advances time by d with a one-way delay of d/2 folded in: both
// flush, then both receive what the other sent.
func (m *memLink) step(d time.Duration) {
	m.now = m.now.Add(d / 2)
	if err := m.a.Flush(m.now); err != nil {
		m.t.Fatal(err)
	}
	if err := m.b.Flush(m.now); err != nil {
		m.t.Fatal(err)
	}
	m.now = m.now.Add(d / 2)
	for _, p := range m.toB {
		var err error
		if m.gotB, err = m.b.Receive(p, addrA, m.now, m.gotB); err != nil {
			m.t.Fatal(err)
		}
	}
	for _, p := range m.toA {
		var err error
		if m.gotA, err = m.a.Receive(p, addrB, m.now, m.gotA); err != nil {
			m.t.Fatal(err)
		}
	}
	m.toA, m.toB = m.toA[:0], m.toB[:0]
}

func TestLiveness(t *testing.T) {
	cfg := testConfig()
	m := newMemLink(t, true, cfg)
	if m.a.State() != Probing {
		t.Fatalf("new lane %v, want probing", m.a.State())
	}
	// The first flush pings; the peer's next flush pongs; a round trip later
	// the lane is up.
	m.step(10 * time.Millisecond)
	m.step(10 * time.Millisecond)
	if m.a.State() != Up || m.b.State() != Up {
		t.Fatalf("after a round trip: %v, %v; want up", m.a.State(), m.b.State())
	}
	h := m.a.Health()
	// The ping left at t=5ms, arrived at 10, the pong left at 15 (held 5 ms,
	// which the pong says), arrived at 20: 10 ms of wire.
	if h.RTT != 10*time.Millisecond || h.SRTT != h.RTT || h.MinRTT != h.RTT {
		t.Fatalf("health %+v, want RTT 10ms", h)
	}
	// Block UDP: after BlockedPings unanswered pings and BlockedAfter without a
	// pong, the lane is blocked; not before.
	m.blocked = true
	blockedAt := time.Time{}
	for i := 0; i < 1000 && blockedAt.IsZero(); i++ {
		m.step(50 * time.Millisecond)
		if m.a.State() == Blocked {
			blockedAt = m.now
		}
	}
	quiet := blockedAt.Sub(m.a.Health().LastPong)
	if blockedAt.IsZero() || quiet < cfg.BlockedAfter || quiet > cfg.BlockedAfter+cfg.PingInterval {
		t.Fatalf("blocked after %v of silence, want %v to %v", quiet, cfg.BlockedAfter, cfg.BlockedAfter+cfg.PingInterval)
	}
	if h := m.a.Health(); h.Unanswered < cfg.BlockedPings || h.Since.After(blockedAt) || blockedAt.Sub(h.Since) >= 50*time.Millisecond {
		t.Fatalf("health %+v", h)
	}
	// Blocked, messages stay queued (the newest per channel) for Drain.
	m.gotB = m.gotB[:0]
	m.blocked = false
	m.a.Enqueue(Sequenced, 0, []byte("old"))
	m.a.Enqueue(Sequenced, 0, []byte("new"))
	m.a.Flush(m.now)
	for _, p := range m.toB { // a ping, if one was due
		m.gotB, _ = m.b.Receive(p, addrA, m.now, m.gotB)
	}
	m.toB = m.toB[:0]
	if len(m.gotB) != 0 {
		t.Fatalf("a blocked lane sent %v", m.gotB)
	}
	var drained []string
	m.a.Drain(func(k Kind, ch byte, seq uint32, p []byte) bool {
		drained = append(drained, string(p))
		return true
	})
	if len(drained) != 1 || drained[0] != "new" {
		t.Fatalf("drained %v", drained)
	}
	m.blocked = true
	// Lift the block: the next ping's pong makes it up again.
	m.blocked = false
	for i := 0; i < 100 && m.a.State() != Up; i++ {
		m.step(50 * time.Millisecond)
	}
	if m.a.State() != Up {
		t.Fatal("the lane did not come back")
	}
	if st := m.a.Stats(); st.PingsSent < 6 || st.PongsRecv < 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A lane that never hears from its peer goes from probing to blocked.
func TestLivenessNeverUp(t *testing.T) {
	cfg := testConfig()
	m := newMemLink(t, false, cfg)
	m.blocked = true
	start := m.now
	for i := 0; i < 1000 && m.a.State() != Blocked; i++ {
		m.step(100 * time.Millisecond)
	}
	if d := m.now.Sub(start); m.a.State() != Blocked || d < cfg.BlockedAfter {
		t.Fatalf("state %v after %v", m.a.State(), d)
	}
}

// Messages ride beside pings and pongs; a stale pong is counted, not fatal.
func TestLaneMessagesAndStalePong(t *testing.T) {
	m := newMemLink(t, false, testConfig())
	m.step(time.Millisecond)
	m.step(time.Millisecond)
	m.gotB = m.gotB[:0]
	m.a.Enqueue(Sequenced, 0, []byte("pos"))
	m.step(time.Millisecond)
	if len(m.gotB) != 1 || string(m.gotB[0].Payload) != "pos" {
		t.Fatalf("b got %v", m.gotB)
	}
	seq := m.gotB[0].Seq
	// A pong for a ping never sent.
	d := &Datagram{Header: Header{Token: tokA, Counter: 1 << 40}, Messages: []Message{{Kind: Pong, Seq: 777, Payload: make([]byte, 4)}}}
	b, _ := d.AppendBinary(nil)
	if _, err := m.a.Receive(b, addrB, m.now, nil); err != nil {
		t.Fatal(err)
	}
	if m.a.Stats().PongsStale != 1 {
		t.Fatalf("stats %+v", m.a.Stats())
	}
	// The fallback path shares the newest per channel with the lane.
	if m.b.AcceptFallback(0, seq) {
		t.Fatal("fallback delivered a message the lane delivered already")
	}
	if !m.b.AcceptFallback(0, seq+1) {
		t.Fatal("fallback refused a newer message")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Config){
		func(c *Config) { c.MTU = 100 },
		func(c *Config) { c.MTU = 70000 },
		func(c *Config) { c.UnreliableQueue = 0 },
		func(c *Config) { c.PingInterval = 0 },
		func(c *Config) { c.BlockedPings = 0 },
		func(c *Config) { c.BlockedAfter = time.Millisecond },
	} {
		c := DefaultConfig()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
		if _, err := New(c, Session{}, func([]byte) error { return nil }); err == nil {
			t.Errorf("New took %+v", c)
		}
	}
	if _, err := NewSession(tokA, tokA, true, nil); err == nil {
		t.Error("NewSession took equal tokens")
	}
	if _, err := NewSession(tokA, tokB, true, []byte("short")); err == nil {
		t.Error("NewSession took a short secret")
	}
	if tk, err := NewToken(); err != nil || tk == (Token{}) {
		t.Errorf("NewToken = %x, %v", tk, err)
	}
}
