package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
)

//go:embed static
var static embed.FS

// DefaultAddr is where Serve listens unless told otherwise: this machine
// only.
const DefaultAddr = "127.0.0.1:8280"

// Options configures Serve.
type Options struct {
	// Addr is the TCP address to serve on. Default DefaultAddr
	// (127.0.0.1:8280). An address other than loopback shows the mesh to
	// anyone who can reach it: Serve logs a warning.
	Addr string
	// Keyed says the node has a mesh key, so that its lanmesh links are
	// marked keyed (cable_car links never are). Default false.
	Keyed bool
	// Traffic starts the node's traffic log, which the page's traffic by
	// message type is made from. Default false: the page shows traffic
	// only if the program started the log itself. It costs a little per
	// message (see mesh.TrafficLog).
	Traffic bool
	// Sample is the time between two looks at the node's peers. Default
	// 250 ms. Changes in the peers reach the page at once; figures that
	// only move are pushed once a second.
	Sample time.Duration
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
}

// Server serves one node's page. Create it with Serve; Close it, or close
// the node: it stops by itself within Sample of the node's Close.
type Server struct {
	node *mesh.Node
	opts Options
	ln   net.Listener
	http *http.Server
	log  *slog.Logger
	done chan struct{}

	shutdownOnce sync.Once
	waitOnce     sync.Once
	wg           sync.WaitGroup // the serve, sample and traffic goroutines
	stopTraffic  func()
	recording    func() bool

	// mu guards everything below.
	mu       sync.Mutex
	closed   bool
	streams  sync.WaitGroup // event streams being served
	subs     map[chan struct{}]struct{}
	track    *tracker
	types    map[string]*typeTrack
	machines map[string]*machine
	order    []string // machines in the order first charted
	state    []byte   // the latest snapshot, as JSON
	snap     snapshot
}

// Serve starts serving n's page, its JSON and its metrics at opts.Addr
// and returns once it listens.
func Serve(n *mesh.Node, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Sample <= 0 {
		opts.Sample = 250 * time.Millisecond
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen on %s: %w", opts.Addr, err)
	}
	s := &Server{node: n, opts: opts, ln: ln, log: log, done: make(chan struct{}),
		subs: map[chan struct{}]struct{}{}, track: newTracker(), types: map[string]*typeTrack{},
		machines: map[string]*machine{}}
	if !isLoopback(ln.Addr()) {
		log.Warn("web: serving beyond this machine: anyone who can reach the address sees the mesh's names, addresses and figures",
			"addr", ln.Addr().String())
	}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	records, recording, cancel := watchTraffic(n, opts.Traffic)
	s.stopTraffic, s.recording = cancel, recording
	s.sample(time.Now())
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web: serving stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		records(s.done, s.count)
	}()
	go s.sampleLoop()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns the page's address, http://host:port/.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops the server: the event streams end, every connection is
// closed, and it returns once every goroutine of the server has ended.
// Idempotent.
func (s *Server) Close() error {
	s.shutdown()
	s.waitOnce.Do(func() {
		s.wg.Wait()
		s.streams.Wait()
	})
	return nil
}

// shutdown stops everything without waiting: Close, or the sampler when
// the node is gone.
func (s *Server) shutdown() {
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.stopTraffic()
		s.http.Close()
	})
}

func (s *Server) sampleLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Sample)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.sample(now)
		case <-s.node.Done():
			s.log.Debug("web: the node closed; so does its page")
			s.shutdown()
			return
		case <-s.done:
			return
		}
	}
}

// sample looks at the node and publishes a new state if the peers changed
// or a second went by.
func (s *Server) sample(now time.Time) {
	peers := readPeers(s.node)
	self := readSelf(s.node, s.opts.Keyed)
	recording := s.recording()
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.track.observe(now, peers, func(id uuid.UUID) string { return goneReason(s.node, id) })
	if !changed && now.Sub(time.UnixMilli(s.snap.Time)) < time.Second-s.opts.Sample/2 {
		return
	}
	for _, t := range s.types {
		if now.Sub(t.rateAt) >= rateWindow/2 {
			msgs, bytes := t.MsgsIn+t.MsgsOut, t.BytesIn+t.BytesOut
			t.MsgsPerSec, t.BytesPerSec = rate(now, t.rateAt, t.rateMsgs, msgs), rate(now, t.rateAt, t.rateBytes, bytes)
			t.rateAt, t.rateMsgs, t.rateBytes = now, msgs, bytes
		}
	}
	s.publishLocked(now, self, recording)
}

// publishLocked makes the snapshot and wakes the event streams.
func (s *Server) publishLocked(now time.Time, self selfInfo, recording bool) {
	snap := snapshot{Time: ms(now), Self: self, Peers: s.track.views(s.opts.Keyed),
		Events: s.track.lastEvents(eventsInState, 0), Traffic: trafficView{On: recording, Types: []typeView{}},
		Charts: []chartView{}}
	for _, t := range s.types {
		snap.Traffic.Types = append(snap.Traffic.Types, t.typeView)
	}
	slices.SortFunc(snap.Traffic.Types, func(a, b typeView) int { return strings.Compare(a.Type, b.Type) })
	for _, id := range s.order {
		m := s.machines[id]
		c := chartView{ID: id, Name: m.name, Self: id == self.ID, Figures: make([]figureView, 0, len(m.figures))}
		for _, f := range m.figures {
			c.Figures = append(c.Figures, figureView{Name: f.name, Unit: f.unit, Max: f.max, Values: slices.Clone(f.values)})
		}
		snap.Charts = append(snap.Charts, c)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		s.log.Error("web: state", "err", err) // cannot happen: only plain types
		return
	}
	s.snap, s.state = snap, b
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // it has a wake-up pending; it will read the newest state
		}
	}
}

// count folds one traffic record in.
func (s *Server) count(r trafficRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.types[r.Type]
	if t == nil {
		if len(s.types) >= maxTypes {
			return
		}
		t = &typeTrack{typeView: typeView{Type: r.Type}, rateAt: time.Now()}
		s.types[r.Type] = t
	}
	if r.Out {
		t.MsgsOut++
		t.BytesOut += uint64(r.Size)
	} else {
		t.MsgsIn++
		t.BytesIn += uint64(r.Size)
	}
}

// Chart adds the newest figures of a machine (id, any stable key; name,
// what the page calls it) to its live charts. Values beyond the chart's
// last 90 are dropped. The page shows them on its next push.
func (s *Server) Chart(id, name string, figures ...Figure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.machines[id]
	if m == nil {
		if len(s.machines) >= maxMachines {
			return
		}
		m = &machine{}
		s.machines[id] = m
		s.order = append(s.order, id)
	}
	m.name = name
	for _, f := range figures[:min(len(figures), maxFigures)] {
		i := slices.IndexFunc(m.figures, func(x *series) bool { return x.name == f.Name })
		if i < 0 {
			if len(m.figures) >= maxFigures {
				continue
			}
			m.figures = append(m.figures, &series{name: f.Name})
			i = len(m.figures) - 1
		}
		x := m.figures[i]
		x.unit, x.max = f.Unit, finite(f.Max)
		x.values = append(x.values, finite(f.Value))
		if len(x.values) > chartPoints {
			x.values = slices.Delete(x.values, 0, len(x.values)-chartPoints)
		}
	}
}

// finite keeps a value JSON can carry: NaN and the infinities read 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Forget removes a machine's charts (a machine that left).
func (s *Server) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.machines, id)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == id })
}

func (s *Server) handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(files)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.state
		s.mu.Unlock()
		writeJSON(w, json.RawMessage(b))
	})
	mux.HandleFunc("GET /api/peers", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		peers := s.snap.Peers
		s.mu.Unlock()
		writeJSON(w, peers)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		var after uint64
		if a := r.URL.Query().Get("after"); a != "" {
			var err error
			if after, err = strconv.ParseUint(a, 10, 64); err != nil {
				http.Error(w, "after: want the seq of an event", http.StatusBadRequest)
				return
			}
		}
		s.mu.Lock()
		ev := s.track.lastEvents(maxEvents, after)
		s.mu.Unlock()
		writeJSON(w, ev)
	})
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	return s.guard(mux)
}

// guard sets headers that keep the page's data from ever running as code,
// and, on loopback, refuses requests for other host names, so that a web
// site cannot read the page through DNS rebinding.
func (s *Server) guard(next http.Handler) http.Handler {
	loop := isLoopback(s.ln.Addr())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loop && !loopbackHost(r.Host) {
			http.Error(w, "this page answers only to localhost", http.StatusForbidden)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// serveEvents streams the state as Server-Sent Events: the whole state at
// once, then each new one, until the client or the server goes. A browser
// reconnects by itself (after retry, 1 s).
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	wake := make(chan struct{}, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "closing", http.StatusServiceUnavailable)
		return
	}
	s.subs[wake] = struct{}{}
	s.streams.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, wake)
		s.mu.Unlock()
		s.streams.Done()
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	var buf bytes.Buffer
	send := func(first bool) bool {
		s.mu.Lock()
		state := s.state
		s.mu.Unlock()
		buf.Reset()
		if first {
			buf.WriteString("retry: 1000\n")
		}
		buf.WriteString("event: state\ndata: ")
		buf.Write(state) // JSON has no raw newline
		buf.WriteString("\n\n")
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(true) {
		return
	}
	for {
		select {
		case <-wake:
			if !send(false) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}
