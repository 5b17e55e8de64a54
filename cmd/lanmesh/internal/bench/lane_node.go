package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/mesh"
)

// nodePosLink carries positions between a linked pair of Nodes with one
// delivery kind: Sequenced (each object its own channel: SendChannel) or
// Reliable (Send), Xfer once a tick, Get at the receiver. The two kinds of
// one pair ride one link, so the lane and the TCP stream are measured
// between the same two nodes.
type nodePosLink struct {
	n    *mesh.Node
	peer uuid.UUID
	kind mesh.Delivery

	refused int // sends refused (ErrBackpressure): the game would drop those
	notUp   int // ticks while the lane was not up (its messages went over the link)

	paced, cuts uint64 // the lane's pacing counters at the last note
}

var _ posLink = (*nodePosLink)(nil)

func (l *nodePosLink) send(p LanePos) error {
	err := l.n.SendChannel(l.peer, &p, l.kind, uint8(p.Obj))
	if errors.Is(err, mesh.ErrBackpressure) {
		l.refused++
		return nil
	}
	return err
}

func (l *nodePosLink) tick(time.Time) error {
	if l.kind != mesh.Reliable {
		if p, err := l.n.Peer(l.peer); err == nil && p.Lane.State != "up" {
			l.notUp++
		}
	}
	return l.n.Xfer()
}

func (l *nodePosLink) recv(fn func(LanePos)) {
	for m, ok := l.n.Get(); ok; m, ok = l.n.Get() {
		if p, ok := m.Msg.(*LanePos); ok && m.Via == l.kind {
			fn(*p)
		}
	}
}

func (l *nodePosLink) note() string {
	var notes []string
	if l.refused > 0 {
		notes = append(notes, fmt.Sprintf("%v: %d sends refused (send buffer full)", l.kind, l.refused))
	}
	if l.notUp > 0 {
		notes = append(notes, fmt.Sprintf("the lane was not up for %d ticks (its messages went over the link)", l.notUp))
	}
	if p, err := l.n.Peer(l.peer); err == nil && l.kind != mesh.Reliable {
		st := p.Lane.Stats
		if st.Paced > l.paced {
			notes = append(notes, fmt.Sprintf("the lane's pacing held messages back at %d ticks (%d slow-downs; limit at the end %s)",
				st.Paced-l.paced, st.PaceCuts-l.cuts, paceRate(st.PaceRate)))
		}
		l.paced, l.cuts = st.Paced, st.PaceCuts
	}
	l.refused, l.notUp = 0, 0
	if len(notes) == 0 {
		return ""
	}
	return fmt.Sprint(notes)
}

func (l *nodePosLink) close() error { return nil } // the pair closes the nodes

// nodePosPair is two Nodes, a sender listening on addrA (inside inA) that
// links to a receiver listening on addrB (inside inB), with the lane up.
// It returns the Sequenced and the Reliable view of each end, and a close.
type nodePosPair struct {
	a, b             *mesh.Node
	laneSnd, laneRcv *nodePosLink
	tcpSnd, tcpRcv   *nodePosLink
}

func newNodePosPair(ctx context.Context, inA, inB func(func() error) error, addrA, addrB netip.Addr) (*nodePosPair, error) {
	start := func(in func(func() error) error, name string, addr netip.Addr) (*mesh.Node, error) {
		var n *mesh.Node
		err := in(func() (err error) {
			cfg := nodeConfig(name, "binary", nil)
			cfg.Registry = laneRegistry
			cfg.Net.Listen = []string{netip.AddrPortFrom(addr, 0).String()}
			// A backlogged link is abandoned, not flushed.
			cfg.Link.CloseTimeout = 200 * time.Millisecond
			lc := lane.DefaultConfig()
			lc.PingInterval = 100 * time.Millisecond
			cfg.Lane.Config = lc
			n, err = mesh.NewNode(cfg)
			return err
		})
		return n, err
	}
	b, err := start(inB, "lane-bench-rcv", addrB)
	if err != nil {
		return nil, err
	}
	a, err := start(inA, "lane-bench-snd", addrA)
	if err != nil {
		b.Close()
		return nil, err
	}
	p := &nodePosPair{a: a, b: b}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := inA(func() error {
		_, err := a.Connect(cctx, b.Addrs()[0].String())
		return err
	}); err != nil {
		p.close()
		return nil, err
	}
	p.laneSnd = &nodePosLink{n: a, peer: b.ID(), kind: mesh.Sequenced}
	p.laneRcv = &nodePosLink{n: b, peer: a.ID(), kind: mesh.Sequenced}
	p.tcpSnd = &nodePosLink{n: a, peer: b.ID(), kind: mesh.Reliable}
	p.tcpRcv = &nodePosLink{n: b, peer: a.ID(), kind: mesh.Reliable}
	if err := p.waitUp(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// waitUp pumps both nodes until each sees its lane to the other up.
func (p *nodePosPair) waitUp(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		p.a.Xfer()
		p.b.Xfer()
		for _, n := range []*mesh.Node{p.a, p.b} {
			for _, ok := n.Get(); ok; _, ok = n.Get() {
			}
		}
		pa, errA := p.a.Peer(p.b.ID())
		pb, errB := p.b.Peer(p.a.ID())
		if errA == nil && errB == nil && pa.Lane.State == "up" && pb.Lane.State == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lane is not up after 10s (state %q; is UDP port %d let through?)", pa.Lane.State, p.b.LanePort())
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *nodePosPair) close() {
	p.a.Close()
	p.b.Close()
}

func paceRate(bytesPerSec uint64) string {
	if bytesPerSec == 0 {
		return "none"
	}
	return fmt.Sprintf("%d kbit/s", bytesPerSec*8/1000)
}
