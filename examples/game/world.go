package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strconv"
	"unicode"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/safetext"
)

// The board every player shares: '#' is a wall, anything else floor. Off
// the board is wall too.
var board = [...]string{
	"........................................",
	"........................................",
	"....#######..............#######........",
	"..........#..............#..............",
	"..........#..............#..............",
	"........................................",
	"..................####..................",
	"....#.............#..#.............#....",
	"....#.............#..#.............#....",
	"..................#..#..................",
	"........................................",
	"..........#..............#..............",
	"..........#..............#..............",
	"....#######..............#######........",
	"........................................",
	"........................................",
}

const (
	boardW = 40
	boardH = len(board)
	// coinsPerRound coins make a round; coinsShown of them lie on the
	// board at once (the untaken ones with the lowest numbers).
	coinsPerRound = 10
	coinsShown    = 3
	// heartbeat: a player that stands still sends its position again
	// every this many ticks, as positions may be lost on their way.
	heartbeat = 10
)

func wall(x, y int) bool { return x < 0 || y < 0 || x >= boardW || y >= boardH || board[y][x] == '#' }

// sender is what the world sends through: the network in the program
// (net.go), a recorder in tests. None of them blocks, and each is done
// with msg when it returns (the node encodes it at once).
type sender interface {
	sendState(msg any)                    // positions: newest wins, may be lost
	sendReliable(msg any)                 // claims: to every player, in order
	sendReliableTo(id uuid.UUID, msg any) // the welcome of a newcomer
}

type player struct {
	id    uuid.UUID
	name  string // as it came from the network: show it through safetext.Line
	x, y  int
	prevX int // where it stood before its last move
	prevY int
	step  uint32 // its newest position's step
	known bool   // a position has come
	hello bool   // its Hello has come
}

// world is the game's state as this player sees it, and its rules. It has
// no sockets and no clock: the front ends call its methods once per tick
// and per message, and it sends through out and tells what happens
// through note (one line per event, as the bot prints them).
type world struct {
	me      player
	players map[uuid.UUID]*player // the other players present
	names   map[uuid.UUID]string  // everyone seen, for the scores of players who left
	out     sender
	note    func(format string, args ...any)

	// Rounds. round 0 is waiting for players; a round ends when all its
	// coins are taken, then pause ticks pass before the next.
	round     uint32
	waitFor   int                                  // other players to hear from before round 1
	pause     int                                  // ticks between rounds
	pauseLeft int                                  // >0: the current round is over, the next starts when it reaches 0
	claims    map[uint32]*[coinsPerRound]uuid.UUID // round -> each coin's winner (zero: untaken)
	owed      map[uuid.UUID]int                    // claims a welcome said would follow, not yet come
	sinceSent int                                  // ticks since this player's position went out
	posMsg    Pos                                  // the position sent: senders encode it at once, so it is reused
}

func newWorld(id uuid.UUID, name string, waitFor, pause int, out sender, note func(string, ...any)) *world {
	w := &world{
		me:      player{id: id, name: name, known: true},
		players: map[uuid.UUID]*player{},
		names:   map[uuid.UUID]string{id: name},
		out:     out,
		note:    note,
		waitFor: waitFor,
		pause:   max(pause, 1),
		claims:  map[uint32]*[coinsPerRound]uuid.UUID{},
		owed:    map[uuid.UUID]int{},
	}
	w.me.x, w.me.y = -1, -1 // nowhere yet, so as not to block its own start
	w.me.x, w.me.y = w.free(startAt(id))
	w.me.prevX, w.me.prevY = w.me.x, w.me.y
	return w
}

// startAt is where a player would like to start: a cell picked by its id.
func startAt(id uuid.UUID) (x, y int) {
	v := binary.BigEndian.Uint32(id[12:])
	return int(v % boardW), int(v / boardW % uint32(boardH))
}

// free returns the free cell nearest to x, y (itself if free): floor, and
// no other player known to stand there. It searches outwards in rings.
func (w *world) free(x, y int) (int, int) {
	for r := 0; r < boardW+boardH; r++ {
		for dy := -r; dy <= r; dy++ {
			for dx := -r; dx <= r; dx++ {
				if max(abs(dx), abs(dy)) != r {
					continue
				}
				if !w.blocked(x+dx, y+dy, nil) {
					return x + dx, y + dy
				}
			}
		}
	}
	return x, y // a board full of players: stay
}

func abs(v int) int { return max(v, -v) }

// blocked reports whether a wall or a player other than self is at x, y.
func (w *world) blocked(x, y int, self *player) bool {
	if wall(x, y) {
		return true
	}
	if &w.me != self && w.me.x == x && w.me.y == y {
		return true
	}
	for _, p := range w.players {
		if p != self && p.known && p.x == x && p.y == y {
			return true
		}
	}
	return false
}

// move steps this player by dx, dy, if the cell is free, and tells
// everyone. It reports whether it moved, and takes a coin it lands on.
func (w *world) move(dx, dy int) bool {
	x, y := w.me.x+dx, w.me.y+dy
	if (dx == 0 && dy == 0) || w.blocked(x, y, &w.me) {
		return false
	}
	w.place(x, y)
	w.pickup()
	return true
}

func (w *world) place(x, y int) {
	w.me.prevX, w.me.prevY = w.me.x, w.me.y
	w.me.x, w.me.y = x, y
	w.me.step++
	w.sendPos()
}

func (w *world) sendPos() {
	w.sinceSent = 0
	w.posMsg = Pos{X: uint8(w.me.x), Y: uint8(w.me.y), Step: w.me.step}
	w.out.sendState(&w.posMsg)
}

// tick is the world's part of a game tick: it settles collisions, takes a
// coin this player stands on, counts down a pause between rounds and
// repeats this player's position now and then.
func (w *world) tick() {
	// Two players who moved into one cell at once: the one with the
	// higher id yields, back where it came from or to the nearest free
	// cell. Each player moves only itself, so both agree without a word.
	for _, p := range w.players {
		if p.known && p.x == w.me.x && p.y == w.me.y && less(p.id, w.me.id) {
			x, y := w.me.prevX, w.me.prevY
			if w.blocked(x, y, &w.me) {
				x, y = w.free(w.me.x, w.me.y)
			}
			w.place(x, y)
			break
		}
	}
	if w.pauseLeft > 0 {
		w.pauseLeft--
		if w.pauseLeft == 0 {
			w.finish(w.round)
			w.startRound(w.round + 1)
		}
	}
	w.pickup()
	if w.sinceSent++; w.sinceSent >= heartbeat {
		w.sendPos()
	}
}

func less(a, b uuid.UUID) bool { return bytes.Compare(a[:], b[:]) < 0 }

// Coins. Coin i of round r lies where a hash of (r, i) says, moved to the
// nearest floor cell: every player computes the same places.
func coinAt(round uint32, i int) (x, y int) {
	h := fnv.New32a()
	var b [5]byte
	binary.BigEndian.PutUint32(b[:], round)
	b[4] = byte(i)
	h.Write(b[:])
	v := h.Sum32()
	x, y = int(v%boardW), int(v/boardW%uint32(boardH))
	for wall(x, y) {
		x = (x + 1) % boardW
	}
	return x, y
}

// coins lists the coins on the board now: the coinsShown untaken ones
// with the lowest numbers, none between rounds or while waiting.
func (w *world) coins() []int {
	if w.round == 0 || w.pauseLeft > 0 {
		return nil
	}
	won := w.won(w.round)
	var out []int
	for i := range coinsPerRound {
		if won[i] == uuid.Nil {
			out = append(out, i)
			if len(out) == coinsShown {
				break
			}
		}
	}
	return out
}

func (w *world) won(round uint32) *[coinsPerRound]uuid.UUID {
	c := w.claims[round]
	if c == nil {
		c = new([coinsPerRound]uuid.UUID)
		w.claims[round] = c
	}
	return c
}

// pickup claims a coin this player stands on, unless a welcome's claims
// are still to come.
func (w *world) pickup() {
	if len(w.owed) > 0 {
		return
	}
	for _, i := range w.coins() {
		if x, y := coinAt(w.round, i); x == w.me.x && y == w.me.y {
			c := &Claim{Round: w.round, Coin: uint8(i), Player: w.me.id, Name: nameBytes(w.me.name)}
			w.out.sendReliable(c)
			w.claim(w.me.id, c)
			return
		}
	}
}

// claim records a claim from a player (this one's own, or one that came;
// the claim may be another's, replayed in a welcome). Of claims
// on one coin, the lowest player id wins: claims only cross on the wire
// (nobody claims a coin it knows is taken), so every player ends with the
// same winners whatever order the claims came in.
//
// A player claims for itself: a claim for another player is taken only as
// part of a welcome (while the claims its Hello announced are coming).
func (w *world) claim(from uuid.UUID, c *Claim) {
	replayed := w.owed[from] > 0
	if n := w.owed[from]; n > 1 {
		w.owed[from] = n - 1
	} else {
		delete(w.owed, from)
	}
	if c.Round < w.round || int(c.Coin) >= coinsPerRound || c.Player == uuid.Nil || (c.Player != from && !replayed) {
		return // a round that is over, or nonsense
	}
	won := w.won(c.Round)
	if cur := won[c.Coin]; cur != uuid.Nil && !less(c.Player, cur) {
		return
	}
	old := won[c.Coin]
	won[c.Coin] = c.Player
	if _, ok := w.names[c.Player]; !ok {
		w.names[c.Player] = nameString(c.Name)
	}
	if _, here := w.players[old]; old != uuid.Nil && old != w.me.id && !here && !w.hasCoin(old) {
		delete(w.names, old) // names are kept for players present and winners only
	}
	if c.Round > w.round {
		// Someone is in a later round: this one is over for everyone.
		w.finish(w.round)
		w.startRound(c.Round)
	}
	w.note("coin %d %d %s", c.Round, c.Coin, safetext.Line(w.names[c.Player]))
	if c.Round == w.round && w.pauseLeft == 0 && len(w.coins()) == 0 {
		w.note("over %d", w.round)
		w.pauseLeft = w.pause
	}
}

func (w *world) startRound(r uint32) {
	if r <= w.round && w.round != 0 {
		return
	}
	for old := range w.claims {
		if old < r {
			delete(w.claims, old)
		}
	}
	// Forget the names of players who are gone and have no coin left to
	// show: the table stays as long as the players.
	for id := range w.names {
		if _, here := w.players[id]; !here && id != w.me.id && !w.hasCoin(id) {
			delete(w.names, id)
		}
	}
	w.round, w.pauseLeft = r, 0
	w.note("round %d", r)
	if len(w.coins()) == 0 { // every coin came before the round began here
		w.note("over %d", r)
		w.pauseLeft = w.pause
	}
}

// finish tells the round's scores, once, as this player has them.
func (w *world) finish(r uint32) {
	if r == 0 {
		return
	}
	line := ""
	for _, s := range w.scores(r) {
		line += " " + safetext.Line(s.name) + "=" + strconv.Itoa(s.coins)
	}
	w.note("final %d%s", r, line)
}

type score struct {
	id    uuid.UUID
	name  string
	coins int
}

// scores lists every player present or with a coin in round r, most
// coins first, then by name and id.
func (w *world) scores(r uint32) []score {
	count := map[uuid.UUID]int{w.me.id: 0}
	for id := range w.players {
		count[id] = 0
	}
	if won := w.claims[r]; won != nil {
		for _, id := range won {
			if id != uuid.Nil {
				count[id]++
			}
		}
	}
	out := make([]score, 0, len(count))
	for id, n := range count {
		out = append(out, score{id: id, name: w.names[id], coins: n})
	}
	slices.SortFunc(out, func(a, b score) int {
		return cmp.Or(cmp.Compare(b.coins, a.coins), cmp.Compare(a.name, b.name), bytes.Compare(a.id[:], b.id[:]))
	})
	return out
}

// join adds a player whose link is up, and welcomes it: this player's
// position, its round, and every claim it knows of that round and later.
func (w *world) join(id uuid.UUID, name string) {
	if id == w.me.id {
		return
	}
	if _, ok := w.players[id]; ok {
		return
	}
	w.players[id] = &player{id: id, name: name}
	w.names[id] = name
	w.note("join %s", safetext.Line(name))
	w.sendPos()
	var replay []*Claim
	for r, won := range w.claims {
		if r < w.round {
			continue
		}
		for i, winner := range won {
			if winner != uuid.Nil {
				replay = append(replay, &Claim{Round: r, Coin: uint8(i), Player: winner, Name: nameBytes(w.names[winner])})
			}
		}
	}
	w.out.sendReliableTo(id, &Hello{Round: w.round, Claims: uint8(len(replay))})
	for _, c := range replay {
		w.out.sendReliableTo(id, c)
	}
}

// leave removes a player whose link ended. Its coins stay its own.
func (w *world) leave(id uuid.UUID) {
	delete(w.owed, id)
	if p, ok := w.players[id]; ok {
		delete(w.players, id)
		w.note("left %s", safetext.Line(p.name))
	}
}

// hello takes a player's Hello: a later round is joined at once; waiting
// ends once waitFor players have said hello.
func (w *world) hello(from uuid.UUID, name string, h *Hello) {
	p := w.peer(from, name)
	p.hello = true
	if h.Claims > 0 {
		w.owed[from] = int(h.Claims)
	}
	switch {
	case h.Round > w.round:
		w.finish(w.round)
		w.startRound(h.Round)
	case w.round == 0:
		n := 0
		for _, p := range w.players {
			if p.hello {
				n++
			}
		}
		if n >= w.waitFor {
			w.startRound(1)
		}
	}
}

// pos takes a player's position; an older one than held is dropped (the
// network may deliver them out of order once positions go Sequenced).
func (w *world) pos(from uuid.UUID, name string, m *Pos) {
	p := w.peer(from, name)
	if p.known && m.Step <= p.step {
		return
	}
	x, y := int(m.X), int(m.Y)
	if x >= boardW || y >= boardH {
		return
	}
	p.x, p.y, p.step, p.known = x, y, m.Step, true
}

func (w *world) peer(id uuid.UUID, name string) *player {
	p := w.players[id]
	if p == nil { // a message before the join event: the link is up
		w.join(id, name)
		p = w.players[id]
	}
	return p
}

// toward is the bot's next step: the first step of a shortest path, round
// walls and players, to the nearest coin on the board; 0, 0 when there is
// none or every way is blocked.
func (w *world) toward() (dx, dy int) {
	targets := map[[2]int]bool{}
	for _, i := range w.coins() {
		x, y := coinAt(w.round, i)
		targets[[2]int{x, y}] = true
	}
	if len(targets) == 0 {
		return 0, 0
	}
	dirs := [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}}
	// first[c] is the first step taken on the way to cell c.
	var first [boardH][boardW]int8
	for y := range first {
		for x := range first[y] {
			first[y][x] = -1
		}
	}
	queue := make([][2]int, 0, boardW*boardH)
	for d, v := range dirs {
		x, y := w.me.x+v[0], w.me.y+v[1]
		if !w.blocked(x, y, &w.me) {
			first[y][x] = int8(d)
			queue = append(queue, [2]int{x, y})
		}
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if targets[c] {
			v := dirs[first[c[1]][c[0]]]
			return v[0], v[1]
		}
		for _, v := range dirs {
			x, y := c[0]+v[0], c[1]+v[1]
			if !w.blocked(x, y, &w.me) && first[y][x] < 0 {
				first[y][x] = first[c[1]][c[0]]
				queue = append(queue, [2]int{x, y})
			}
		}
	}
	return 0, 0
}

// glyphPool are the glyphs players can have, in the order they are tried.
const glyphPool = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"

// glyphs gives every player present (this one included) a glyph no other
// has. Players are taken in id order; each gets the first letter (or
// digit) of its name in capitals if free, else in lower case if free, or
// else the first free glyph of the pool counting on from a place its id
// picks. The result depends only on the set of players, not
// on the order they joined in, so players who know the same players see
// the same glyphs, however close together two of them joined. A player's
// glyph can change when one with a lower id and the same wish joins. Past
// len(glyphPool) players, the rest show as '?'.
func (w *world) glyphs() map[uuid.UUID]rune {
	ids := []uuid.UUID{w.me.id}
	names := map[uuid.UUID]string{w.me.id: w.me.name}
	for id, p := range w.players {
		ids = append(ids, id)
		names[id] = p.name
	}
	return assignGlyphs(ids, names)
}

func assignGlyphs(ids []uuid.UUID, names map[uuid.UUID]string) map[uuid.UUID]rune {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	out := make(map[uuid.UUID]rune, len(ids))
	taken := map[rune]bool{}
	for _, id := range ids {
		g := '?'
		first := firstRune(names[id])
		if first < unicode.MaxASCII && (unicode.IsLetter(first) || unicode.IsDigit(first)) {
			if up, low := unicode.ToUpper(first), unicode.ToLower(first); !taken[up] {
				g = up
			} else if !taken[low] {
				g = low
			}
		}
		wish := int(binary.BigEndian.Uint32(id[:4]) % uint32(len(glyphPool)))
		for k := 0; g == '?' && k < len(glyphPool); k++ {
			if c := rune(glyphPool[(wish+k)%len(glyphPool)]); !taken[c] {
				g = c
				break
			}
		}
		if g != '?' {
			taken[g] = true
		}
		out[id] = g
	}
	return out
}

func firstRune(s string) rune {
	for _, r := range s {
		return r
	}
	return 0
}

// taken counts the coins of the current round that have a winner.
func (w *world) taken() int {
	n := 0
	if won := w.claims[w.round]; won != nil {
		for _, id := range won {
			if id != uuid.Nil {
				n++
			}
		}
	}
	return n
}

// hasCoin reports whether id won a coin of a round still kept.
func (w *world) hasCoin(id uuid.UUID) bool {
	for _, won := range w.claims {
		if slices.Contains(won[:], id) {
			return true
		}
	}
	return false
}
