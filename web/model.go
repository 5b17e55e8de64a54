package web

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The JSON the page, /api and /metrics are made from. Times are Unix
// milliseconds; RTTs are milliseconds.

type snapshot struct {
	Time    int64       `json:"time"`
	Self    selfInfo    `json:"self"`
	Peers   []peerView  `json:"peers"`
	Events  []eventView `json:"events"`
	Traffic trafficView `json:"traffic"`
	Charts  []chartView `json:"charts"`
}

type peerView struct {
	ID          string  `json:"id"`
	Instance    string  `json:"instance"`
	Name        string  `json:"name"`
	Addr        string  `json:"addr"`
	Site        string  `json:"site,omitempty"` // a remote peer's site (through the hub)
	Remote      string  `json:"remote,omitempty"`
	State       string  `json:"state"`
	Found       string  `json:"found"`
	Keyed       bool    `json:"keyed"`
	CableCar    bool    `json:"cablecar"`
	Since       int64   `json:"since,omitempty"`
	RTTms       float64 `json:"rtt_ms"`
	RTTVarMs    float64 `json:"rttvar_ms"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
	MsgsIn      uint64  `json:"msgs_in"`
	MsgsOut     uint64  `json:"msgs_out"`
	Dropped     uint64  `json:"dropped"`
	MsgsPerSec  float64 `json:"msgs_per_s"`
	BytesPerSec float64 `json:"bytes_per_s"`
	LastHeard   int64   `json:"last_heard,omitempty"`
}

type eventView struct {
	Seq    uint64 `json:"seq"`
	Time   int64  `json:"time"`
	Kind   string `json:"kind"` // joined, left, restarted
	ID     string `json:"id"`
	Name   string `json:"name"`
	Addr   string `json:"addr,omitempty"`
	Site   string `json:"site,omitempty"`
	Reason string `json:"reason,omitempty"`
}

type trafficView struct {
	On    bool       `json:"on"`
	Types []typeView `json:"types"`
}

type typeView struct {
	Type        string  `json:"type"`
	MsgsIn      uint64  `json:"msgs_in"`
	MsgsOut     uint64  `json:"msgs_out"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
	MsgsPerSec  float64 `json:"msgs_per_s"`
	BytesPerSec float64 `json:"bytes_per_s"`
}

type chartView struct {
	ID      string       `json:"id"`
	Name    string       `json:"name"`
	Self    bool         `json:"self"`
	Figures []figureView `json:"figures"`
}

type figureView struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"`
}

// Bounds: nothing the page holds grows with the LAN's whims.
const (
	maxEvents     = 256 // held for /api/events
	eventsInState = 40  // sent with each state
	maxMachines   = 256 // charted machines
	maxFigures    = 16  // figures per machine
	chartPoints   = 90  // values per figure
	maxTypes      = 256 // message types counted
	rateWindow    = time.Second
)

// peerTrack is what the server remembers of a peer between samples.
type peerTrack struct {
	last      peerSample
	heard     time.Time // when BytesIn last grew
	rateAt    time.Time
	rateMsgs  uint64
	rateBytes uint64
	msgsRate  float64
	bytesRate float64
}

// typeTrack counts one message type of the traffic log.
type typeTrack struct {
	typeView
	rateAt    time.Time
	rateMsgs  uint64
	rateBytes uint64
}

// machine is one charted machine.
type machine struct {
	name    string
	figures []*series
}

type series struct {
	name, unit string
	max        float64
	values     []float64 // oldest first, at most chartPoints
}

// Figure is one figure of a machine for its live chart: Value now, and Max,
// the top of the chart's scale (100 for a percentage; 0 to scale to the
// values shown).
type Figure struct {
	Name  string
	Unit  string
	Value float64
	Max   float64
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func durMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rate is what grew from base to now per second over the time since at.
func rate(now, at time.Time, base, cur uint64) float64 {
	dt := now.Sub(at).Seconds()
	if dt <= 0 || cur < base {
		return 0
	}
	return float64(cur-base) / dt
}

func (t *peerTrack) view(keyed bool) peerView {
	p := t.last
	v := peerView{ID: p.ID.String(), Instance: p.Instance.String(), Name: p.Name, Addr: p.Addr, Site: p.Site, Remote: p.Remote,
		State: p.State, Found: p.Found, CableCar: p.CableCar, Keyed: keyed && !p.CableCar && p.State == "linked",
		Since: ms(p.Since), RTTms: durMs(p.RTT), RTTVarMs: durMs(p.RTTVar), BytesIn: p.BytesIn, BytesOut: p.BytesOut,
		MsgsIn: p.MsgsIn, MsgsOut: p.MsgsOut, Dropped: p.Dropped, LastHeard: ms(t.heard)}
	if p.State == "linked" {
		v.MsgsPerSec, v.BytesPerSec = t.msgsRate, t.bytesRate
	}
	return v
}

// sortPeers orders peers by name, then id, as the table shows them.
func sortPeers(ps []peerView) {
	slices.SortFunc(ps, func(a, b peerView) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// tracker turns samples of the node into views, events and rates. Its
// owner serialises calls.
type tracker struct {
	peers   map[uuid.UUID]*peerTrack
	linked  map[uuid.UUID]uuid.UUID // linked peers: id -> instance
	events  []eventView             // oldest first, at most maxEvents
	counts  map[string]uint64       // events by kind, since the start
	seq     uint64
	started bool
}

func newTracker() *tracker {
	return &tracker{peers: map[uuid.UUID]*peerTrack{}, linked: map[uuid.UUID]uuid.UUID{}, counts: map[string]uint64{}}
}

func (t *tracker) event(now time.Time, kind string, p peerSample, reason string) {
	t.seq++
	t.counts[kind]++
	t.events = append(t.events, eventView{Seq: t.seq, Time: ms(now), Kind: kind, ID: p.ID.String(),
		Name: p.Name, Addr: p.Addr, Site: p.Site, Reason: reason})
	if len(t.events) > maxEvents {
		t.events = slices.Delete(t.events, 0, len(t.events)-maxEvents)
	}
}

// observe folds in one sample of the node's peers and reports whether the
// linked set changed. gone says why a peer that left went.
func (t *tracker) observe(now time.Time, peers []peerSample, gone func(uuid.UUID) string) bool {
	changed := !t.started
	t.started = true
	seen := make(map[uuid.UUID]bool, len(peers))
	for _, p := range peers {
		seen[p.ID] = true
		tr := t.peers[p.ID]
		if tr == nil {
			tr = &peerTrack{rateAt: now}
			t.peers[p.ID] = tr
		}
		if p.BytesIn > tr.last.BytesIn || (tr.heard.IsZero() && p.State == "linked") {
			tr.heard = now
		}
		if p.State == "linked" {
			inst, was := t.linked[p.ID]
			switch {
			case !was:
				t.event(now, "joined", p, "")
				changed = true
			case inst != p.Instance:
				t.event(now, "restarted", p, "")
				changed = true
			}
			t.linked[p.ID] = p.Instance
		} else if _, was := t.linked[p.ID]; was {
			delete(t.linked, p.ID)
			t.event(now, "left", p, gone(p.ID))
			changed = true
		}
		msgs, bytes := p.MsgsIn+p.MsgsOut, p.BytesIn+p.BytesOut
		if msgs < tr.rateMsgs || bytes < tr.rateBytes || tr.last.Instance != p.Instance {
			// A new link: its counters started again.
			tr.rateAt, tr.rateMsgs, tr.rateBytes = now, msgs, bytes
		} else if now.Sub(tr.rateAt) >= rateWindow {
			tr.msgsRate, tr.bytesRate = rate(now, tr.rateAt, tr.rateMsgs, msgs), rate(now, tr.rateAt, tr.rateBytes, bytes)
			tr.rateAt, tr.rateMsgs, tr.rateBytes = now, msgs, bytes
		}
		tr.last = p
	}
	for id, tr := range t.peers {
		if seen[id] {
			continue
		}
		if _, was := t.linked[id]; was {
			delete(t.linked, id)
			t.event(now, "left", tr.last, gone(id))
			changed = true
		}
		delete(t.peers, id)
	}
	return changed
}

func (t *tracker) views(keyed bool) []peerView {
	out := make([]peerView, 0, len(t.peers))
	for _, tr := range t.peers {
		out = append(out, tr.view(keyed))
	}
	sortPeers(out)
	return out
}

// lastEvents returns up to n of the newest events, oldest first, and only
// those after seq.
func (t *tracker) lastEvents(n int, after uint64) []eventView {
	ev := t.events
	if len(ev) > n {
		ev = ev[len(ev)-n:]
	}
	i, _ := slices.BinarySearchFunc(ev, after+1, func(e eventView, s uint64) int {
		switch {
		case e.Seq < s:
			return -1
		case e.Seq > s:
			return 1
		}
		return 0
	})
	return slices.Clone(ev[i:])
}
