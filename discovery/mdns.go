package discovery

import (
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hashicorp/mdns"
	"github.com/miekg/dns"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
)

// TXT keys of the mDNS service. The version key doubles as a marker: a
// service of our type without it is some other program's.
const (
	txtVersion  = "lanmesh"
	txtID       = "id"
	txtInstance = "inst"
	txtMesh     = "mesh"
	txtName     = "name"
	// txtSig is a keyed node's only record besides the version: a sealed
	// keyed beacon (without the node name, to fit a TXT string), in base64
	// without padding. Nothing else a keyed node publishes names it.
	txtSig = "sig"

	maxTXTLen = 255 // one character-string of a TXT record
)

// mdnsStartup are the offsets after start of the extra browses a starting
// node makes, so that a lost answer costs little time.
var mdnsStartup = []time.Duration{150 * time.Millisecond, 500 * time.Millisecond}

// mdnsAgent runs one hashicorp/mdns server per multicast interface and the
// periodic browse. hashicorp/mdns never announces and never says goodbye,
// so peers found only here are lost only by not answering browses.
type mdnsAgent struct {
	d     *Discoverer
	quiet *log.Logger
	token string // keyed: the opaque name of the node's mDNS records
	// kick asks the loop for a browse now: a node just started browsing,
	// and browsing back finds it at once instead of at the next round.
	kick chan struct{}

	// serversMu guards servers and closed; New fills servers, the loop
	// keeps them in step with the interfaces, Close empties them for good.
	serversMu sync.Mutex
	servers   map[string]*mdnsServer
	closed    bool
}

type mdnsServer struct {
	key string // the interface's name and addresses; a change restarts the server
	srv *mdns.Server
}

func newMDNSAgent(d *Discoverer) *mdnsAgent {
	return &mdnsAgent{
		token:   fmt.Sprintf("%016x", rand.Uint64()),
		d:       d,
		quiet:   log.New(io.Discard, "", 0),
		kick:    make(chan struct{}, 1),
		servers: make(map[string]*mdnsServer),
	}
}

func (a *mdnsAgent) txt() []string {
	if keys := a.d.keys.Load(); keys != nil {
		b := a.d.self
		b.Name = ""
		b.Seq = a.d.seq.Add(1)
		var arr [MaxBeaconLen]byte
		p, err := b.AppendSigned(arr[:0], keys.Primary())
		if err != nil {
			// Validate guarantees a valid beacon; crypto/rand failed.
			a.d.log.Warn("discovery: sealing the mDNS record", "err", err)
		}
		return []string{
			txtVersion + "=" + strconv.Itoa(KeyedBeaconVersion),
			txtSig + "=" + base64.RawStdEncoding.EncodeToString(p),
		}
	}
	name := a.d.self.Name
	for len(txtName)+1+len(name) > maxTXTLen {
		// Cut at a rune boundary so the TXT value stays UTF-8.
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	txt := []string{
		txtVersion + "=" + strconv.Itoa(BeaconVersion),
		txtID + "=" + a.d.self.ID.String(),
		txtInstance + "=" + a.d.self.Instance.String(),
		txtMesh + "=" + a.d.self.Mesh,
		txtName + "=" + name,
	}
	return txt
}

// publicName is what names this node in the mDNS records (the host name and
// the service instance): its node id, or, keyed, a token drawn at random
// when the Discoverer starts, which says nothing of the node and changes at
// each start.
func (a *mdnsAgent) publicName() string {
	if a.d.keys.Load() != nil {
		return a.token
	}
	return a.d.self.ID.String()
}

// resign restarts the servers, so that their records are signed with the
// current primary key; the loop starts them again at its next browse.
func (a *mdnsAgent) resign() {
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	for name, s := range a.servers {
		s.srv.Shutdown()
		delete(a.servers, name)
	}
}

// sync starts a server for each multicast interface that lacks one and
// stops those of interfaces that went away or changed address.
func (a *mdnsAgent) sync(ifs []ifaddr.Interface) {
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	if a.closed {
		return
	}
	want := make(map[string]ifaddr.Interface)
	for _, it := range ifs {
		want[it.Name] = it
	}
	for name, s := range a.servers {
		if it, ok := want[name]; !ok || serverKey(it) != s.key {
			s.srv.Shutdown()
			delete(a.servers, name)
		}
	}
	for name, it := range want {
		if _, ok := a.servers[name]; ok {
			continue
		}
		srv, err := a.startServer(it)
		if err != nil {
			a.d.warnOnce("mdns server "+serverKey(it), "discovery: mDNS server", "iface", name, "err", err)
			continue
		}
		a.servers[name] = &mdnsServer{key: serverKey(it), srv: srv}
	}
}

func serverKey(it ifaddr.Interface) string {
	var b strings.Builder
	b.WriteString(it.Name)
	for _, p := range it.Prefixes {
		b.WriteString(" " + p.String())
	}
	return b.String()
}

func (a *mdnsAgent) startServer(it ifaddr.Interface) (*mdns.Server, error) {
	ifi, err := net.InterfaceByIndex(it.Index)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, 0, len(it.Prefixes))
	for _, p := range it.Prefixes {
		ips = append(ips, net.IP(p.Addr().AsSlice()))
	}
	// Host name and addresses are given so that the library never asks a
	// resolver; the id keeps host names of nodes on one machine apart.
	host := "lanmesh-" + a.publicName()[:8] + ".local."
	// One service instance per interface, each naming only that
	// interface's addresses. Linux hands a query that arrives on one
	// interface to the servers of all of them, and hashicorp/mdns reports
	// only the first complete answer per instance name: with one name, a
	// browser could be told only an address it cannot reach.
	instance := fmt.Sprintf("%s-%d", a.publicName(), it.Index)
	svc, err := mdns.NewMDNSService(instance, a.d.cfg.MDNSService, "local.", host,
		a.d.cfg.Port, ips, a.txt())
	if err != nil {
		return nil, err
	}
	zone := &watchZone{MDNSService: svc, service: svc.Service + ".local.", started: a.started}
	return mdns.NewServer(&mdns.Config{Zone: zone, Iface: ifi, Logger: a.quiet})
}

// watchZone answers like the service it wraps, and notices browses of
// its service type that ask for a unicast answer (the QU bit): lanmesh
// nodes set it on the browses of their first second only, so it marks a
// node that has just started. hashicorp/mdns servers never announce, so
// without this the others would find a new node only at their next
// periodic browse.
type watchZone struct {
	*mdns.MDNSService
	service string // the fully qualified service type, "_lanmesh._tcp.local."
	started func()
}

// Records is called on the server's receive goroutine; started must not
// block.
func (z *watchZone) Records(q dns.Question) []dns.RR {
	if q.Qtype == dns.TypePTR && q.Qclass&(1<<15) != 0 && strings.EqualFold(q.Name, z.service) {
		z.started()
	}
	return z.MDNSService.Records(q)
}

func (a *mdnsAgent) started() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *mdnsAgent) shutdown() {
	a.serversMu.Lock()
	defer a.serversMu.Unlock()
	a.closed = true
	for name, s := range a.servers {
		s.srv.Shutdown()
		delete(a.servers, name)
	}
}

// loop browses at start, a few times over the first second, then every
// MDNSInterval with jitter, and at once when another node starts, until
// Close. Browses run in the background so that a start noticed while one
// is in flight is answered by a browse of its own right away.
func (a *mdnsAgent) loop() {
	defer a.d.wg.Done()
	entries := make(chan *mdns.ServiceEntry, 64)
	queryDone := make(chan struct{})
	inflight := 0 // queries running, one per interface per browse
	browse := func(starting bool) {
		ifs := a.d.multicastInterfaces()
		a.sync(ifs)
		inflight += a.browse(ifs, starting, entries, queryDone)
	}
	defer func() {
		// Close canceled the queries' context; each still runs until its
		// timeout, and is waited for so that no goroutine outlives Close.
		for inflight > 0 {
			select {
			case e := <-entries:
				_ = e
			case <-queryDone:
				inflight--
			}
		}
	}()

	startup := 0 // browses of the startup schedule done so far
	t := time.NewTimer(0)
	defer t.Stop()
	var lastKick time.Time
	for {
		select {
		case <-a.d.done:
			return
		case e := <-entries:
			a.handle(e)
		case <-queryDone:
			inflight--
		case <-t.C:
			starting := startup <= len(mdnsStartup)
			browse(starting)
			var next time.Duration
			if startup < len(mdnsStartup) {
				prev := time.Duration(0)
				if startup > 0 {
					prev = mdnsStartup[startup-1]
				}
				next = mdnsStartup[startup] - prev
			} else {
				next = a.interval()
			}
			startup++
			t.Reset(next)
		case <-a.kick:
			// A node is starting. During our own startup (whose browses
			// kick our own server too) the schedule already browses often;
			// later, kicks are spaced and in-flight queries bounded so that
			// a flood of them cannot turn into continuous browsing.
			if startup <= len(mdnsStartup) || time.Since(lastKick) < minKickGap || inflight >= maxInflight {
				continue
			}
			lastKick = time.Now()
			browse(false)
		}
	}
}

const (
	// minKickGap spaces browses made because another node started.
	minKickGap = 100 * time.Millisecond
	// maxInflight bounds the mDNS queries running at once.
	maxInflight = 16
)

func (a *mdnsAgent) interval() time.Duration {
	iv := a.d.cfg.MDNSInterval
	if j := a.d.cfg.Jitter; j > 0 && j < iv {
		iv += time.Duration(rand.Int64N(int64(2*j)+1)) - j
	}
	return iv
}

// browse starts a query on every interface and returns how many it
// started. Each query sends its answers to entries and, when it ends
// (within MDNSTimeout), signals done; the loop waits for all of them.
func (a *mdnsAgent) browse(ifs []ifaddr.Interface, starting bool, entries chan<- *mdns.ServiceEntry, done chan<- struct{}) int {
	n := 0
	for _, it := range ifs {
		ifi, err := net.InterfaceByIndex(it.Index)
		if err != nil {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			err := mdns.QueryContext(a.d.ctx, &mdns.QueryParam{
				Service:   a.d.cfg.MDNSService,
				Domain:    "local",
				Timeout:   a.d.cfg.MDNSTimeout,
				Interface: ifi,
				Entries:   entries,
				// The QU bit marks a starting node's browses; see watchZone.
				WantUnicastResponse: starting,
				// With IPv6 on, the library may report only the IPv6
				// address of a peer; beacons and links are IPv4.
				DisableIPv6: true,
				Logger:      a.quiet,
			})
			if err != nil {
				a.d.log.Debug("discovery: mDNS browse", "iface", ifi.Name, "err", err)
			}
		}()
	}
	return n
}

// handle turns one browse answer into a sighting, if it is a node of ours.
func (a *mdnsAgent) handle(e *mdns.ServiceEntry) {
	s, ok := a.verify(e)
	if !ok {
		return
	}
	if s.ID == a.d.self.ID || s.Mesh != a.d.cfg.Mesh {
		return
	}
	if !a.d.believable(s.Addr.Addr()) {
		// An A record of another subnet, or loopback: not an address to
		// dial on a stranger's word.
		a.d.implausible.Add(1)
		a.d.log.Debug("discovery: mDNS answer names an address that is not on this LAN", "id", s.ID, "addr", s.Addr)
		return
	}
	a.d.log.Debug("discovery: mDNS answer", "id", s.ID, "addr", s.Addr)
	a.d.observe(s)
}

// verify parses an answer of the kind this node speaks: for a keyed node,
// one whose signed record verifies, matches the other fields and is not a
// replay (an mDNS server repeats one record, so the same sequence number
// is accepted again, but never an older one).
func (a *mdnsAgent) verify(e *mdns.ServiceEntry) (sighting, bool) {
	keys := a.d.keys.Load()
	keyed := false
	var sig string
	if e != nil {
		for _, f := range e.InfoFields {
			switch {
			case f == txtVersion+"="+strconv.Itoa(KeyedBeaconVersion):
				keyed = true
			case strings.HasPrefix(f, txtSig+"="):
				sig = f[len(txtSig)+1:]
			}
		}
	}
	if keyed != (keys != nil) {
		a.d.unkeyed.Add(1)
		return sighting{}, false
	}
	if !keyed {
		s, ok := parseEntry(e)
		if !ok {
			a.d.ignored.Add(1)
		}
		return s, ok
	}
	ip, ok := entryAddr(e)
	if !ok || len(sig) > base64.RawStdEncoding.EncodedLen(MaxBeaconLen) {
		a.d.ignored.Add(1)
		return sighting{}, false
	}
	raw, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil {
		a.d.ignored.Add(1)
		return sighting{}, false
	}
	b, err := ParseSignedBeacon(raw, keys)
	if err != nil {
		a.d.wrongKey.Add(1)
		return sighting{}, false
	}
	if b.Port != uint16(e.Port) {
		a.d.wrongKey.Add(1)
		return sighting{}, false
	}
	if b.ID != a.d.self.ID && !a.d.fresh(b, true) {
		a.d.replayed.Add(1)
		return sighting{}, false
	}
	// The sealed record has no node name (it would not fit a TXT string):
	// the name stays what beacons or the link said.
	return sighting{ID: b.ID, Instance: b.Instance, Mesh: b.Mesh, Addr: netip.AddrPortFrom(ip, b.Port),
		Via: ViaMDNS, KeyID: b.KeyID, NoName: true}, true
}

// entryAddr is an mDNS answer's IPv4 address, if it has a usable one.
func entryAddr(e *mdns.ServiceEntry) (netip.Addr, bool) {
	if e == nil || e.Port <= 0 || e.Port > 65535 {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(e.AddrV4)
	if !ok {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if !ip.Is4() || ip.IsUnspecified() {
		return netip.Addr{}, false
	}
	return ip, true
}

// parseEntry validates an unkeyed mDNS answer with the same care as a
// beacon.
func parseEntry(e *mdns.ServiceEntry) (sighting, bool) {
	var s sighting
	ip, ok := entryAddr(e)
	if !ok {
		return s, false
	}
	fields := make(map[string]string, len(e.InfoFields))
	for _, f := range e.InfoFields {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	if fields[txtVersion] != strconv.Itoa(BeaconVersion) {
		return s, false
	}
	id, err1 := uuid.Parse(fields[txtID])
	inst, err2 := uuid.Parse(fields[txtInstance])
	mesh, name := fields[txtMesh], fields[txtName]
	b := Beacon{ID: id, Instance: inst, Port: uint16(e.Port), Mesh: mesh, Name: name}
	if err1 != nil || err2 != nil || b.validate() != nil {
		return s, false
	}
	return sighting{
		ID:       id,
		Instance: inst,
		Name:     name,
		Mesh:     mesh,
		Addr:     netip.AddrPortFrom(ip, uint16(e.Port)),
		Via:      ViaMDNS,
	}, true
}
