package main

import (
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/message"
)

// The game's messages: plain structs of fixed-size fields. They need no
// code to travel: the binary codec derives their form (the fields in
// order, integers big-endian; see codec.DeriveBinary).

// Pos is where a player stands: state, sent often, only the newest
// matters. Step grows with every move, so a receiver keeps the newest.
type Pos struct {
	X    uint8  `json:"x" msgpack:"x"`
	Y    uint8  `json:"y" msgpack:"y"`
	Step uint32 `json:"step" msgpack:"step"`
}

// Hello is what a player tells each newcomer, reliably, before replaying
// the claims it knows: the round it is in (0 while it waits for players)
// and how many claims follow. The newcomer claims no coin until they have
// come, so that it never takes a coin it has not heard was taken.
type Hello struct {
	Round  uint32 `json:"round" msgpack:"round"`
	Claims uint8  `json:"claims" msgpack:"claims"`
}

// Claim says that Player stepped on coin Coin of round Round (see the
// package doc for who wins a coin). A player broadcasts its own claims,
// reliably, and replays every claim it knows of the current round to each
// newcomer, which is why the claim names its player rather than relying on
// the sender.
type Claim struct {
	Round  uint32    `json:"round" msgpack:"round"`
	Coin   uint8     `json:"coin" msgpack:"coin"`
	Player uuid.UUID `json:"player" msgpack:"player"`
	Name   [16]byte  `json:"name" msgpack:"name"` // the player's name, cut to 16 bytes, NUL-padded
}

func init() {
	message.MustRegister[Pos](message.Default, 0x32, "GamePos")
	message.MustRegister[Hello](message.Default, 0x33, "GameHello")
	message.MustRegister[Claim](message.Default, 0x34, "GameClaim")
}

// nameBytes cuts name to 16 bytes, at a rune boundary.
func nameBytes(name string) (b [16]byte) {
	n := 0
	for i := range name {
		if i > len(b) {
			break
		}
		n = i
	}
	if len(name) <= len(b) {
		n = len(name)
	}
	copy(b[:], name[:n])
	return b
}

// nameString is the name nameBytes kept.
func nameString(b [16]byte) string {
	n := len(b)
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return string(b[:n])
}
