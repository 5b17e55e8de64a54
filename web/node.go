package web

import (
	"net"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
)

// This file is the page's only contact with package mesh: what a Node
// tells, turned into the page's own types. When the mesh API changes, this
// is the file to adapt.

// selfInfo is this node as the page shows it.
type selfInfo struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	Keyed bool     `json:"keyed"`
}

// peerSample is one peer as the node reports it at one moment.
type peerSample struct {
	ID, Instance uuid.UUID
	Name, Addr   string
	Site         string // a remote peer's site (through a relay: package hub)
	State        string // "linked", "dialling", "seen"
	Found        string // how it was found: "broadcast", "mdns+broadcast", "seed", "cable_car", "dialled in"
	CableCar     bool
	Since        time.Time
	RTT, RTTVar  time.Duration
	BytesIn      uint64
	BytesOut     uint64
	MsgsIn       uint64
	MsgsOut      uint64
	Dropped      uint64
	Remote       string // the link's remote address
}

// cableCarPrefix starts the name the mesh gives a cable_car program's link.
const cableCarPrefix = "cablecar@"

func readSelf(n *mesh.Node, keyed bool) selfInfo {
	s := selfInfo{ID: n.ID().String(), Name: n.Name(), Keyed: keyed}
	for _, a := range n.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	return s
}

func readPeers(n *mesh.Node) []peerSample {
	infos := n.Peers()
	out := make([]peerSample, 0, len(infos))
	for _, p := range infos {
		s := peerSample{ID: p.ID, Instance: p.Instance, Name: p.Name, Addr: p.Addr, State: p.State.String(),
			Since: p.Since, RTT: p.Link.RTT, RTTVar: p.Link.RTTVar, BytesIn: p.Link.BytesIn, BytesOut: p.Link.BytesOut,
			MsgsIn: p.Link.MsgsIn, MsgsOut: p.Link.MsgsOut, Dropped: p.Link.Dropped}
		if p.RemoteAddr != nil {
			s.Remote = p.RemoteAddr.String()
		}
		// A cable_car link is attached by the mesh under this name, with no
		// discovery behind it; a lanmesh peer could claim the name, which
		// would only make the page call it cable_car.
		s.CableCar = p.Via == 0 && strings.HasPrefix(p.Name, cableCarPrefix)
		s.Site = p.Site
		switch {
		case s.CableCar:
			s.Found = "cable_car"
		case p.Site != "":
			s.Found = "relay"
		case p.Via != 0:
			s.Found = p.Via.String()
		default:
			s.Found = "dialled in" // it linked to us, or a configured peer
		}
		out = append(out, s)
	}
	return out
}

// goneReason says why the node has no link to id any more ("" if unknown).
func goneReason(n *mesh.Node, id uuid.UUID) string {
	info, err := n.Peer(id)
	if err == nil {
		err = info.Err
	}
	if err == nil {
		return ""
	}
	// "mesh: peer gone: NAME (ID): REASON": the name and id the page
	// already shows.
	msg := err.Error()
	if i := strings.LastIndex(msg, id.String()+"): "); i >= 0 {
		return msg[i+len(id.String())+3:]
	}
	return msg
}

// trafficRecord is one message of the traffic log.
type trafficRecord struct {
	Type string
	Out  bool
	Size int
}

// watchTraffic subscribes to n's traffic log; records is fed while the log
// records. recording reports whether it does.
func watchTraffic(n *mesh.Node, start bool) (records func(stop <-chan struct{}, f func(trafficRecord)), recording func() bool, cancel func()) {
	log := n.Traffic()
	ch, unwatch := log.Watch(4096)
	started := start && !log.Recording()
	if started {
		log.Start()
	}
	cancel = func() {
		unwatch()
		if started {
			log.Stop() // as it was: the program had not started it
		}
	}
	records = func(stop <-chan struct{}, f func(trafficRecord)) {
		for {
			select {
			case r := <-ch:
				f(trafficRecord{Type: r.Type, Out: r.Dir == mesh.Out, Size: r.Size})
			case <-stop:
				return
			}
		}
	}
	return records, log.Recording, cancel
}

// isLoopback reports whether a listener's address is on loopback only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
