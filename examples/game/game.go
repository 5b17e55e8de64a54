package main

import (
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

// The board every player shares. Positions are clamped to it.
const (
	boardW = 40
	boardH = 16
)

// Move says where a player now stands, and how many moves it has made.
// A player sends one after each move, to everyone, and its latest one to
// each newcomer, so that it appears where it is.
type Move struct {
	X    uint8  `json:"x" msgpack:"x"`
	Y    uint8  `json:"y" msgpack:"y"`
	Step uint32 `json:"step" msgpack:"step"`
}

func init() { message.MustRegister[Move](message.Default, 0x32, "GameMove") }

// AppendBinary appends X, Y and Step (big-endian): 6 bytes, 8 on the wire.
func (m Move) AppendBinary(b []byte) ([]byte, error) {
	return append(b, m.X, m.Y, byte(m.Step>>24), byte(m.Step>>16), byte(m.Step>>8), byte(m.Step)), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (m *Move) UnmarshalBinary(p []byte) error {
	if len(p) != 6 {
		return errors.New("GameMove: want 6 bytes")
	}
	m.X, m.Y = p[0], p[1]
	m.Step = uint32(p[2])<<24 | uint32(p[3])<<16 | uint32(p[4])<<8 | uint32(p[5])
	return nil
}

type player struct {
	id    uuid.UUID
	name  string
	x, y  int
	step  uint32 // the latest move seen
	moves int    // moves seen from it (not counting where it stood when it joined)
	known bool   // a position has come
}

// game is the state both front ends (the screen and the headless mode)
// drive, one tick at a time: move, then pump.
type game struct {
	node   *mesh.Node
	me     player
	others map[uuid.UUID]*player
	gone   []*player // players that left, as they were last
	// note tells the front end what happened, one line each: join, leave,
	// at (where a player stood when it appeared), move.
	note func(format string, args ...any)
}

func newGame(node *mesh.Node, x, y int, note func(string, ...any)) *game {
	return &game{
		node:   node,
		me:     player{id: node.ID(), name: node.Name(), x: clamp(x, boardW), y: clamp(y, boardH), known: true},
		others: map[uuid.UUID]*player{},
		note:   note,
	}
}

// startAt picks a start for a name, the same every time, clear of the
// edges so that the scripted path stays on the board.
func startAt(name string) (x, y int) {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return 1 + int(v%uint32(boardW-6)), 1 + int((v/boardW)%uint32(boardH-5))
}

func clamp(v, n int) int { return max(0, min(v, n-1)) }

func (g *game) own() *Move {
	return &Move{X: uint8(g.me.x), Y: uint8(g.me.y), Step: g.me.step}
}

// step moves this player by dx, dy and tells everyone. It reports false
// for a move into a wall.
func (g *game) step(dx, dy int) bool {
	x, y := clamp(g.me.x+dx, boardW), clamp(g.me.y+dy, boardH)
	if x == g.me.x && y == g.me.y {
		return false
	}
	g.me.x, g.me.y = x, y
	g.me.step++
	g.me.moves++
	// Queued now, sent by the next Xfer with the rest of the tick's.
	g.node.Broadcast(g.own())
	return true
}

// pump is the network's part of a tick: Xfer, then every message and
// every peer event that came since the last tick. It never blocks.
func (g *game) pump() error {
	if err := g.node.Xfer(); err != nil {
		return err
	}
	for m, ok := g.node.Get(); ok; m, ok = g.node.Get() {
		if ev, isEvent := m.Msg.(*mesh.PeerEvent); isEvent {
			g.event(*ev) // in order: a peer joins before its first move
			continue
		}
		mv, isMove := m.Msg.(*Move)
		if !isMove {
			continue
		}
		p := g.peer(m.From, safetext.Line(m.FromName))
		fresh := mv.Step > p.step
		p.x, p.y, p.step = clamp(int(mv.X), boardW), clamp(int(mv.Y), boardH), max(p.step, mv.Step)
		switch {
		case fresh:
			p.known = true
			p.moves++
			g.note("move %s %d %d", p.name, p.x, p.y)
		case !p.known:
			p.known = true
			g.note("at %s %d %d", p.name, p.x, p.y)
		}
	}
	return g.node.Xfer()
}

// event handles a peer event of the pump.
func (g *game) event(ev mesh.PeerEvent) {
	switch ev.Kind {
	case mesh.PeerJoined, mesh.PeerRestarted:
		g.peer(ev.Peer.ID, ev.Peer.Name)
		g.note("join %s", ev.Peer.Name)
		// The newcomer learns where this player stands.
		g.node.Send(ev.Peer.ID, g.own())
	case mesh.PeerLeft:
		if p, ok := g.others[ev.Peer.ID]; ok {
			delete(g.others, ev.Peer.ID)
			g.gone = append(g.gone, p)
			g.note("leave %s %v", p.name, ev.Err)
		}
	}
}

func (g *game) peer(id uuid.UUID, name string) *player {
	p := g.others[id]
	if p == nil {
		p = &player{id: id, name: name}
		g.others[id] = p
	}
	return p
}

// glyph is the letter a player shows on the board.
func glyph(name string) rune {
	for _, r := range name {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		if r > ' ' {
			return r
		}
	}
	return '@'
}

func (p *player) String() string { return fmt.Sprintf("%s at %d,%d", p.name, p.x, p.y) }
