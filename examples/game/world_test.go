package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// recorder is a sender that keeps what was sent.
type recorder struct {
	sent []sent
}

type sent struct {
	to   uuid.UUID // uuid.Nil: everyone
	kind string    // "state" or "reliable"
	msg  any
}

func (r *recorder) sendState(msg any) {
	if p, ok := msg.(*Pos); ok { // the world reuses it, as a node would encode it now
		c := *p
		msg = &c
	}
	r.sent = append(r.sent, sent{kind: "state", msg: msg})
}
func (r *recorder) sendReliable(msg any) { r.sent = append(r.sent, sent{kind: "reliable", msg: msg}) }
func (r *recorder) sendReliableTo(id uuid.UUID, msg any) {
	r.sent = append(r.sent, sent{to: id, kind: "reliable", msg: msg})
}

// hub is a network of worlds in memory: what a world sends waits in its
// outbox until deliver hands it to the others, in the order sent, as a
// link would.
type hub struct {
	t      *testing.T
	worlds map[uuid.UUID]*world
	boxes  map[uuid.UUID]*recorder
	notes  map[uuid.UUID]*[]string
}

func newHub(t *testing.T) *hub {
	return &hub{t: t, worlds: map[uuid.UUID]*world{}, boxes: map[uuid.UUID]*recorder{}, notes: map[uuid.UUID]*[]string{}}
}

// id makes a node id that sorts by n.
func id(n byte) uuid.UUID { return uuid.UUID{0: n, 15: n} }

// add makes a world and links it to every other (each sees the others join).
func (h *hub) add(n byte, name string, waitFor int) *world {
	rec, notes := &recorder{}, &[]string{}
	w := newWorld(id(n), name, waitFor, 3, rec, func(f string, a ...any) { *notes = append(*notes, fmt.Sprintf(f, a...)) })
	for _, o := range h.worlds {
		o.join(w.me.id, name)
		w.join(o.me.id, o.me.name)
	}
	h.worlds[w.me.id], h.boxes[w.me.id], h.notes[w.me.id] = w, rec, notes
	return w
}

// remove takes a world off the network: the others see it leave, and what
// it had not yet sent is lost.
func (h *hub) remove(w *world) {
	delete(h.worlds, w.me.id)
	delete(h.boxes, w.me.id)
	for _, o := range h.worlds {
		o.leave(w.me.id)
	}
}

// deliver hands every waiting message to its receivers, until none waits.
func (h *hub) deliver() {
	for range 100 {
		moved := false
		for from, box := range h.boxes {
			msgs := box.sent
			box.sent = nil
			for _, s := range msgs {
				moved = true
				for to, w := range h.worlds {
					if to == from || (s.to != uuid.Nil && s.to != to) {
						continue
					}
					name := h.worlds[from].me.name
					switch m := s.msg.(type) {
					case *Pos:
						w.pos(from, name, m)
					case *Hello:
						w.hello(from, name, m)
					case *Claim:
						w.claim(from, m)
					}
				}
			}
		}
		if !moved {
			return
		}
	}
	h.t.Fatal("the worlds never stopped talking")
}

// tick ticks every world, then delivers.
func (h *hub) tick() {
	for _, w := range h.worlds {
		w.tick()
	}
	h.deliver()
}

func (h *hub) lines(w *world, prefix string) []string {
	var out []string
	for _, l := range *h.notes[w.me.id] {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// put places a world's player at x, y and tells the others.
func (h *hub) put(w *world, x, y int) {
	w.place(x, y)
	h.deliver()
}

func TestWallsAndPlayersBlock(t *testing.T) {
	h := newHub(t)
	a, b := h.add(1, "ann", 1), h.add(2, "bob", 1)
	h.deliver()
	h.put(a, 9, 3) // left of the wall at 10,3
	if a.move(1, 0) || a.me.x != 9 {
		t.Errorf("walked into a wall: at %d,%d", a.me.x, a.me.y)
	}
	h.put(a, 0, 0)
	if a.move(-1, 0) || a.move(0, -1) {
		t.Error("walked off the board")
	}
	h.put(b, 1, 0)
	if a.move(1, 0) {
		t.Error("walked through bob")
	}
	if !a.move(0, 1) || a.me.x != 0 || a.me.y != 1 {
		t.Errorf("a free step refused: at %d,%d", a.me.x, a.me.y)
	}
}

// TestSameCellAtOnce: two players step into one cell in the same tick
// (neither knew of the other's step); the higher id steps back, on both
// screens, and they do not meet again.
func TestSameCellAtOnce(t *testing.T) {
	h := newHub(t)
	a, b := h.add(1, "ann", 1), h.add(2, "bob", 1)
	h.put(a, 4, 0)
	h.put(b, 6, 0)
	if !a.move(1, 0) || !b.move(-1, 0) {
		t.Fatal("the steps were refused")
	}
	h.deliver()
	h.tick()
	if a.me.x != 5 || b.me.x != 6 {
		t.Errorf("ann at %d, bob at %d; want bob (higher id) back at 6", a.me.x, b.me.x)
	}
	if p := b.players[a.me.id]; p.x != 5 {
		t.Errorf("bob sees ann at %d", p.x)
	}
	if p := a.players[b.me.id]; p.x != 6 || p.y != 0 {
		t.Errorf("ann sees bob at %d,%d", p.x, p.y)
	}
}

// walkTo moves w onto coin i of its round, jumping next to it first.
func walkOnto(w *world, i int) {
	x, y := coinAt(w.round, i)
	for _, d := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
		if !w.blocked(x+d[0], y+d[1], &w.me) {
			w.me.x, w.me.y = x+d[0], y+d[1]
			w.move(-d[0], -d[1])
			return
		}
	}
	panic("a coin walled in")
}

func TestCoinPickup(t *testing.T) {
	h := newHub(t)
	a, b := h.add(1, "ann", 1), h.add(2, "bob", 1)
	h.deliver()
	if a.round != 1 || b.round != 1 {
		t.Fatalf("rounds %d, %d after hello; want 1", a.round, b.round)
	}
	if got := a.coins(); len(got) != coinsShown || got[0] != 0 {
		t.Fatalf("coins on the board: %v", got)
	}
	walkOnto(b, 1)
	h.deliver()
	for _, w := range []*world{a, b} {
		if got := w.coins(); len(got) != coinsShown || got[0] != 0 || got[1] != 2 || got[2] != 3 {
			t.Errorf("%s: coins on the board after 1 was taken: %v", w.me.name, got)
		}
		if s := w.scores(1); s[0].name != "bob" || s[0].coins != 1 || s[1].coins != 0 {
			t.Errorf("%s: scores %+v", w.me.name, s)
		}
	}
}

// TestCrossingClaims: both step onto coin 0 before hearing of the other;
// the lower id wins it on both, whichever claim each got first.
func TestCrossingClaims(t *testing.T) {
	for _, order := range []string{"ann first", "bob first"} {
		h := newHub(t)
		a, b := h.add(1, "ann", 1), h.add(2, "bob", 1)
		h.deliver()
		first, second := a, b
		if order == "bob first" {
			first, second = b, a
		}
		walkOnto(first, 0)
		second.players[first.me.id].known = false // it has not heard where first went
		walkOnto(second, 0)
		if a.claims[1][0] != a.me.id || b.claims[1][0] != b.me.id {
			t.Fatalf("%s: each should hold its own claim before delivery", order)
		}
		h.deliver()
		for _, w := range []*world{a, b} {
			if w.claims[1][0] != a.me.id {
				t.Errorf("%s: %s gives coin 0 to %v, want ann (lower id)", order, w.me.name, w.claims[1][0])
			}
		}
	}
}

// playRound ticks bots until every world has printed round r's final.
func playRound(t *testing.T, h *hub, r uint32) {
	t.Helper()
	final := fmt.Sprintf("final %d", r)
	for tick := range 3000 {
		done := true
		for _, w := range h.worlds {
			if len(h.lines(w, final)) == 0 {
				done = false
				w.move(w.toward())
			}
		}
		if done {
			return
		}
		h.tick()
		if tick == 2999 {
			t.Fatalf("round %d did not end", r)
		}
	}
}

func finals(h *hub, r uint32) map[string]string {
	out := map[string]string{}
	for _, w := range h.worlds {
		l := h.lines(w, fmt.Sprintf("final %d ", r))
		out[w.me.name] = strings.Join(l, "|")
	}
	return out
}

func agree(t *testing.T, h *hub, r uint32) string {
	t.Helper()
	var want string
	for name, f := range finals(h, r) {
		if want == "" {
			want = f
		}
		if f != want || f == "" {
			t.Errorf("round %d: %s says %q, another %q", r, name, f, want)
		}
	}
	total := 0
	for _, f := range strings.Fields(want)[2:] {
		var n int
		fmt.Sscanf(f[strings.IndexByte(f, '=')+1:], "%d", &n)
		total += n
	}
	if total != coinsPerRound {
		t.Errorf("round %d: %q counts %d coins, want %d", r, want, total, coinsPerRound)
	}
	return want
}

// TestBotsPlayRounds: three bots play two rounds on the in-memory network;
// every one prints the same final scores, which count every coin.
func TestBotsPlayRounds(t *testing.T) {
	h := newHub(t)
	h.add(3, "cat", 2)
	h.add(1, "ann", 2)
	h.add(2, "bob", 2)
	h.deliver()
	playRound(t, h, 1)
	agree(t, h, 1)
	playRound(t, h, 2)
	agree(t, h, 2)
}

// TestLeaveMidRound: a player leaves mid-round with coins; the others play
// on, its coins stay its own, and a newcomer learns the round and its
// claims and agrees on the scores.
func TestLeaveMidRound(t *testing.T) {
	h := newHub(t)
	a, b := h.add(1, "ann", 1), h.add(2, "bob", 1)
	h.deliver()
	walkOnto(a, 0)
	walkOnto(a, 1)
	h.deliver()
	h.remove(a)
	if got := h.lines(b, "left ann"); len(got) != 1 {
		t.Errorf("bob's lines: %q", *h.notes[b.me.id])
	}
	c := h.add(3, "cat", 1)
	h.deliver()
	if c.round != 1 || c.taken() != 2 {
		t.Fatalf("the newcomer is in round %d with %d coins taken, want 1 and 2", c.round, c.taken())
	}
	playRound(t, h, 1)
	want := agree(t, h, 1)
	if !strings.Contains(want, " ann=2") {
		t.Errorf("ann's coins were lost: %q", want)
	}
}

// TestLaterRoundWins: a player that never heard a round's last claim (its
// claimant left at once) moves on when it hears of the next round.
func TestLaterRoundWins(t *testing.T) {
	w := newWorld(id(2), "bob", 1, 3, &recorder{}, func(string, ...any) {})
	w.join(id(1), "ann")
	w.hello(id(1), "ann", &Hello{Round: 4})
	if w.round != 4 {
		t.Fatalf("round %d after a Hello of round 4", w.round)
	}
	w.claim(id(3), &Claim{Round: 5, Coin: 2, Player: id(3), Name: nameBytes("cat")})
	if w.round != 5 || w.claims[5][2] != id(3) || w.claims[4] != nil {
		t.Errorf("round %d, claims %v after a claim of round 5", w.round, w.claims)
	}
	w.claim(id(1), &Claim{Round: 4, Coin: 1, Player: id(1)})
	if w.claims[4] != nil {
		t.Error("a claim of a round that is over was kept")
	}
}

// TestWelcome: a newcomer gets this player's position, round and claims,
// the position as state and the rest reliably, to it alone.
func TestWelcome(t *testing.T) {
	rec := &recorder{}
	w := newWorld(id(2), "bob", 1, 3, rec, func(string, ...any) {})
	w.join(id(1), "ann")
	w.hello(id(1), "ann", &Hello{})
	walkOnto(w, 0)
	rec.sent = nil
	w.join(id(3), "cat")
	var got []string
	for _, s := range rec.sent {
		to := "all"
		if s.to != uuid.Nil {
			to = s.to.String()[:2]
		}
		got = append(got, fmt.Sprintf("%s %T %s", s.kind, s.msg, to))
	}
	want := []string{"state *main.Pos all", "reliable *main.Hello 03", "reliable *main.Claim 03"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("sent %q, want %q", got, want)
	}
}

func TestGlyphs(t *testing.T) {
	names := map[uuid.UUID]string{id(1): "bob", id(2): "Bea", id(3): "ann", id(4): "\x1b[31m", id(5): "Bo", id(6): "9lives"}
	ids := []uuid.UUID{id(1), id(2), id(3), id(4), id(5), id(6)}
	g := assignGlyphs(ids, names)
	if g[id(1)] != 'B' || g[id(2)] != 'b' || g[id(3)] != 'A' || g[id(6)] != '9' {
		t.Errorf("wishes not granted: %q", g)
	}
	seen := map[rune]bool{}
	for _, r := range g {
		if seen[r] || r == '?' {
			t.Errorf("glyph %q twice or unset: %q", r, g)
		}
		seen[r] = true
	}
	// The same players in another order get the same glyphs: two players
	// joining at once get the same glyphs on every screen.
	rev := []uuid.UUID{id(6), id(5), id(4), id(3), id(2), id(1)}
	if g2 := assignGlyphs(rev, names); fmt.Sprint(g2) != fmt.Sprint(g) {
		t.Errorf("order changed glyphs: %q, %q", g, g2)
	}
	// Two worlds that know the same players show the same glyphs.
	h := newHub(t)
	a, b := h.add(7, "xena", 1), h.add(8, "xavier", 1)
	ga, gb := a.glyphs(), b.glyphs()
	if ga[a.me.id] != 'X' || gb[a.me.id] != 'X' || ga[b.me.id] != 'x' || gb[b.me.id] != 'x' {
		t.Errorf("ann sees %q, bob sees %q", ga, gb)
	}
	// Every glyph of the pool, then '?'.
	many := map[uuid.UUID]string{}
	var all []uuid.UUID
	for i := range len(glyphPool) + 2 {
		u := uuid.UUID{0: byte(i), 1: byte(i >> 8), 5: 1}
		all = append(all, u)
		many[u] = "same"
	}
	seen = map[rune]bool{}
	q := 0
	for _, r := range assignGlyphs(all, many) {
		if r == '?' {
			q++
		} else if seen[r] {
			t.Errorf("%q twice", r)
		}
		seen[r] = true
	}
	if q != 2 {
		t.Errorf("%d players without a glyph, want 2", q)
	}
}

// TestBotFindsCoin: from anywhere, the bot's steps reach a coin.
func TestBotFindsCoin(t *testing.T) {
	for n := range byte(20) {
		w := newWorld(id(n+1), "bot", 0, 3, &recorder{}, func(string, ...any) {})
		w.startRound(uint32(n) + 1)
		before := w.taken()
		for range boardW * boardH {
			if w.taken() > before {
				break
			}
			if !w.move(w.toward()) {
				t.Fatalf("round %d: the bot is stuck at %d,%d", w.round, w.me.x, w.me.y)
			}
		}
		if w.taken() == before {
			t.Errorf("round %d: no coin reached", w.round)
		}
	}
}

func TestCoinsOnFloor(t *testing.T) {
	for r := range uint32(200) {
		for i := range coinsPerRound {
			if x, y := coinAt(r, i); wall(x, y) {
				t.Fatalf("coin %d of round %d in a wall at %d,%d", i, r, x, y)
			}
		}
	}
}

// TestNewcomerWaitsForClaims: a newcomer claims no coin until the claims
// its welcome announced have come, so it never takes a coin it has not
// heard was taken, even with a lower id than the winner.
func TestNewcomerWaitsForClaims(t *testing.T) {
	rec := &recorder{}
	w := newWorld(id(1), "ann", 1, 3, rec, func(string, ...any) {})
	w.join(id(2), "bob")
	w.hello(id(2), "bob", &Hello{Round: 1, Claims: 1})
	walkOnto(w, 0)
	w.tick()
	for _, s := range rec.sent {
		if _, ok := s.msg.(*Claim); ok {
			t.Fatalf("claimed coin 0 before the welcome's claims came")
		}
	}
	w.claim(id(2), &Claim{Round: 1, Coin: 0, Player: id(2), Name: nameBytes("bob")})
	if w.claims[1][0] != id(2) || len(w.owed) != 0 {
		t.Fatalf("coin 0 is %v, owed %v", w.claims[1][0], w.owed)
	}
	walkOnto(w, 1)
	if w.claims[1][1] != w.me.id {
		t.Error("no claim once the welcome was complete")
	}
	// A welcomer that leaves before its claims came owes nothing.
	w.hello(id(3), "cat", &Hello{Round: 1, Claims: 5})
	w.leave(id(3))
	if len(w.owed) != 0 {
		t.Errorf("owed %v after the welcomer left", w.owed)
	}
}

// TestForeignClaims: a claim for another player is taken only inside a
// welcome; outside it, a player can claim only for itself.
func TestForeignClaims(t *testing.T) {
	w := newWorld(id(5), "eve", 1, 3, &recorder{}, func(string, ...any) {})
	w.join(id(2), "bob")
	w.hello(id(2), "bob", &Hello{Round: 1})
	w.claim(id(2), &Claim{Round: 1, Coin: 0, Player: id(1), Name: nameBytes("ann")})
	if w.claims[1][0] != uuid.Nil {
		t.Error("bob gave coin 0 to ann outside a welcome")
	}
	w.hello(id(2), "bob", &Hello{Round: 1, Claims: 1})
	w.claim(id(2), &Claim{Round: 1, Coin: 0, Player: id(1), Name: nameBytes("ann")})
	if w.claims[1][0] != id(1) || w.names[id(1)] != "ann" {
		t.Errorf("a welcome's claim for ann not taken: %v", w.claims[1][0])
	}
	w.claim(id(2), &Claim{Round: 1, Coin: 1, Player: id(1)})
	if w.claims[1][1] != uuid.Nil {
		t.Error("a claim past the welcome's count taken")
	}
	// A welcome that names ever lower winners of one coin leaves one name.
	w.hello(id(2), "bob", &Hello{Round: 1, Claims: 200})
	for i := range 200 {
		w.claim(id(2), &Claim{Round: 1, Coin: 2, Player: uuid.UUID{0: 0, 1: byte(255 - i), 15: 1}, Name: nameBytes(fmt.Sprint(i))})
	}
	if len(w.names) != 4 { // eve, bob, ann, the last winner of coin 2
		t.Errorf("%d names kept: %v", len(w.names), w.names)
	}
}
