package resume

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// A reference integration, with goroutines and real sockets (TCP on
// loopback): each end has a Session guarded by one send lock, each link a
// reader and a writer goroutine, and links are cut by a reset (what is in
// the socket buffers is lost) while both ends keep sending. It follows
// INTEGRATION.md section 4, to show the locking works under -race: every
// message is delivered once, in order, or reported lost with its range.

const (
	pData   byte = 0x10
	pResume      = CodeResume
	pAck         = CodeAck
)

type pEnd struct {
	name string
	pair Pair
	t    *testing.T

	// mu is the send lock: the journal, and the live link's pending bytes
	// and state.
	mu       sync.Mutex
	sess     *Session
	live     *pLink
	msg      uint64
	seqMsg   map[uint64]uint64
	accepted []uint64
	lost     map[uint64]*Loss

	got []uint64 // written by deliver callbacks, under the tracker's lock
}

type pLink struct {
	e      *pEnd
	conn   net.Conn
	o      *Opening
	state  int // 0 awaiting, 1 resending, 2 streaming (under e.mu)
	resend uint64
	buf    []byte // pending (under e.mu)
	wake   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

func pFrame(dst []byte, code byte, payload []byte) []byte {
	dst = append(dst, byte(2+len(payload)), code)
	return append(dst, payload...)
}

func (e *pEnd) send() {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.live
	streaming := l != nil && l.state == 2 // before Append moves Next
	e.msg++
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], e.msg)
	frame := pFrame(nil, pData, p[:])
	seq, err := e.sess.Journal.Append(frame)
	if err != nil {
		e.msg--
		return
	}
	e.seqMsg[seq] = e.msg
	e.accepted = append(e.accepted, e.msg)
	if streaming {
		l.buf = append(l.buf, frame...)
		l.signal()
	}
}

func (l *pLink) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (e *pEnd) recordLoss(loss *Loss) {
	if loss == nil {
		return
	}
	for seq := loss.First; seq <= loss.Last; seq++ {
		e.lost[e.seqMsg[seq]] = loss
	}
}

// open starts a link on conn: Open under the send lock, the Resume first.
func (e *pEnd) open(conn net.Conn, b Binding, secret func() (Secret, error)) *pLink {
	l := &pLink{e: e, conn: conn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	e.mu.Lock()
	if old := e.live; old != nil {
		old.kill()
	}
	var err error
	if l.o, err = e.sess.Open(e.pair, b, secret); err != nil {
		e.mu.Unlock()
		e.t.Fatalf("%s: Open: %v", e.name, err)
	}
	own, _ := l.o.Own.AppendBinary(nil)
	l.buf = pFrame(nil, pResume, own)
	if l.o.SendNow {
		l.state = 2
	}
	e.live = l
	e.mu.Unlock()
	l.wg.Add(2)
	go l.read()
	go l.write()
	return l
}

// kill cuts the link with a reset: bytes in the socket buffers are lost.
func (l *pLink) kill() {
	if tc, ok := l.conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	l.conn.Close()
	select {
	case <-l.done:
	default:
		close(l.done)
	}
}

func (l *pLink) write() {
	defer l.wg.Done()
	e := l.e
	tick := time.NewTicker(2 * time.Millisecond) // the pings, which carry acks
	defer tick.Stop()
	for {
		select {
		case <-l.wake:
		case <-tick.C:
		case <-l.done:
			return
		}
		e.mu.Lock()
		if e.live == l && l.state == 1 && len(l.buf) < 4096 {
			var next uint64
			l.buf, next, _ = e.sess.Journal.AppendFrames(l.buf, l.resend, 1024)
			l.resend = next
			if next == e.sess.Journal.Next() {
				l.state = 2
				e.sess.Journal.Pin(0)
			} else {
				e.sess.Journal.Pin(next)
				l.signal()
			}
		}
		if l.state != 0 {
			if n, ok := e.sess.Tracker.TakeAck(); ok {
				l.buf = pFrame(l.buf, pAck, AppendAck(nil, n))
			}
		}
		batch := l.buf
		l.buf = nil
		e.mu.Unlock()
		if len(batch) > 0 {
			if _, err := l.conn.Write(batch); err != nil {
				return
			}
		}
	}
}

func (l *pLink) read() {
	defer l.wg.Done()
	e := l.e
	r := bufio.NewReader(l.conn)
	first := true
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		payload := make([]byte, int(hdr[0])-2)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		if first != (hdr[1] == pResume) {
			e.t.Errorf("%s: frame 0x%02x where the Resume must be first, and only first", e.name, hdr[1])
			return
		}
		first = false
		switch hdr[1] {
		case pResume:
			e.mu.Lock()
			if e.live != l {
				e.mu.Unlock()
				return // replaced before it began
			}
			res, err := e.sess.Accept(l.o, payload)
			if err != nil {
				e.mu.Unlock()
				e.t.Errorf("%s: Accept: %v", e.name, err)
				return
			}
			e.recordLoss(res.Lost)
			if res.Renumbered {
				// Not on every new session: one this side began at Open
				// keeps the numbers of what it journaled before, and a
				// later Loss names them.
				e.seqMsg = map[uint64]uint64{}
			}
			if l.state != 2 {
				l.resend, l.state = res.Start, 1
			}
			e.mu.Unlock()
			l.signal()
		case pAck:
			n, err := ParseAck(payload)
			e.mu.Lock()
			if err == nil && e.live == l {
				err = e.sess.Journal.Ack(n)
			}
			e.mu.Unlock()
			if err != nil {
				e.t.Errorf("%s: Ack: %v", e.name, err)
				return
			}
		case pData:
			m := binary.BigEndian.Uint64(payload)
			_, err := l.o.Stream.Deliver(1, func(skip int) (int, int) {
				e.got = append(e.got, m)
				return 1, 10
			})
			if errors.Is(err, ErrStale) {
				continue
			}
			if err != nil {
				e.t.Errorf("%s: Deliver: %v", e.name, err)
				return
			}
			if e.sess.Tracker.AckDue() {
				l.signal()
			}
		}
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return a, r.c
}

func TestReferenceIntegrationOverTCP(t *testing.T) {
	for _, c := range []struct {
		name     string
		frames   int
		overflow Overflow
	}{{"ample budget", DefaultMaxFrames, DropOldest}, {"small budget", 64, DropOldest}, {"small budget refusing", 64, Refuse}} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.frames)))
			var ends [2]*pEnd
			for i := range ends {
				sess, err := NewSession(JournalConfig{MaxFrames: c.frames, MaxBytes: 1 << 20, Overflow: c.overflow},
					TrackerConfig{AckFrames: 16, AckBytes: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				ends[i] = &pEnd{name: string(rune('A' + i)), t: t, sess: sess,
					seqMsg: map[uint64]uint64{}, lost: map[uint64]*Loss{}}
			}
			ends[0].pair = Pair{LocalNode: ID{1}, LocalInstance: ID{1, 1}, RemoteNode: ID{2}, RemoteInstance: ID{2, 1}}
			ends[1].pair = ends[0].pair.flip()
			var links []*pLink
			connect := func(k int) {
				a, b := tcpPair(t)
				bind := KeyedBinding([]byte{byte(k)})
				i2r, r2i := [32]byte{byte(k)}, [32]byte{byte(k), 1}
				for i, conn := range []net.Conn{a, b} {
					e := ends[i]
					links = append(links, e.open(conn, bind, func() (Secret, error) { return KeyedSecret(e.pair, i2r, r2i), nil }))
				}
			}
			stop := make(chan struct{})
			var senders sync.WaitGroup
			for _, e := range ends {
				senders.Add(1)
				go func() {
					defer senders.Done()
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						e.send()
						if n%64 == 63 {
							time.Sleep(200 * time.Microsecond) // a game's pace, not a flood
						}
					}
				}()
			}
			connect(0)
			for k := 1; k <= 20; k++ {
				// Let traffic flow, then cut the link with a reset and make
				// a new one at once (sometimes a moment later).
				waitFor(t, func() bool { return len(delivered(ends[0])) > 0 }, "traffic")
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				for _, l := range links[len(links)-2:] {
					l.kill()
				}
				if rng.IntN(3) == 0 {
					time.Sleep(time.Millisecond)
				}
				connect(k)
			}
			close(stop)
			senders.Wait()
			// Settle: everything accepted is acknowledged or reported lost.
			waitFor(t, func() bool {
				for _, e := range ends {
					e.mu.Lock()
					f, _ := e.sess.Journal.Kept()
					settled := e.live.state == 2 && f == 0 && e.sess.Journal.Acked()+1 >= e.sess.Journal.From()
					e.mu.Unlock()
					if !settled {
						return false
					}
				}
				return true
			}, "every message acknowledged")
			for _, l := range links {
				l.kill()
				l.wg.Wait()
			}
			for i, e := range ends {
				r := ends[1-i]
				var last uint64
				seen := map[uint64]bool{}
				for _, m := range r.got {
					if m <= last {
						t.Fatalf("%s delivered %d of %s after %d", r.name, m, e.name, last)
					}
					seen[m], last = true, m
				}
				lost := 0
				for _, m := range e.accepted {
					switch {
					case e.lost[m] != nil && seen[m]:
						t.Fatalf("%s: message %d reported lost (%v), yet delivered", e.name, m, e.lost[m])
					case e.lost[m] != nil:
						lost++
					case !seen[m]:
						t.Fatalf("%s: message %d of %d neither delivered nor reported lost", e.name, m, len(e.accepted))
					}
				}
				t.Logf("%s sent %d, %d delivered, %d lost (budget), %d resent, %d duplicates dropped, %d stale",
					e.name, len(e.accepted), len(r.got), lost, e.sess.Journal.Stats().Resent,
					r.sess.Tracker.Stats().Duplicates, r.sess.Tracker.Stats().Stale)
				if (c.frames == DefaultMaxFrames || c.overflow == Refuse) && lost > 0 {
					t.Errorf("%s lost %d with an ample budget or one that refuses", e.name, lost)
				}
			}
		})
	}
}

// delivered returns a snapshot of what e delivered (taken under the
// tracker's lock, which the deliver callbacks hold).
func delivered(e *pEnd) []uint64 {
	e.sess.Tracker.mu.Lock()
	defer e.sess.Tracker.mu.Unlock()
	return append([]uint64(nil), e.got...)
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
