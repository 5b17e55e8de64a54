package hub

import (
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
)

// Presence. Every bridge publishes a heartbeat to its own site's subject;
// the bridged node of a site with the lowest id among those heard (the
// gateway) publishes the site's roster to every site. A node takes the
// peers of other sites' rosters as its remote peers, and keeps one no
// roster has listed (and that sent nothing) for 8 heartbeats before it
// reports it left. A gateway that dies is out of the site after 3
// heartbeats; the next takes over at once, well within the 8 that remote
// sites wait: its site's peers stay.

const (
	memberBeats = 3 // heartbeats after which a silent member is out
	remoteBeats = 8 // heartbeats after which an unlisted remote peer left
)

// presenceLoop publishes this node's heartbeat and, as the gateway, its
// site's roster, and takes what others publish.
func (b *Bridge) presenceLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.hb)
	defer t.Stop()
	// Members fall silent between heartbeats: look five times as often,
	// so that a dead gateway is replaced within memberBeats and a fifth.
	check := time.NewTicker(b.hb / 5)
	defer check.Stop()
	b.beat()
	for {
		select {
		case <-b.done:
			b.bye()
			return
		case <-b.port.Done(): // the node closed
			b.bye()
			<-b.done
			return
		case m := <-b.presCh:
			b.handlePresence(m)
		case <-b.publish:
			b.beat()
		case <-t.C:
			b.beat()
		case <-check.C:
			b.mu.Lock()
			was := b.gateway
			r, gw := b.electLocked(time.Now())
			b.mu.Unlock()
			if gw && !was {
				b.publishRoster(r) // taking over: at once
			}
		}
	}
}

// liveMembersLocked counts the members heard within memberBeats.
func (b *Bridge) liveMembersLocked(now time.Time) int {
	k := 0
	for _, m := range b.members {
		if now.Sub(m.seen) < memberBeats*b.hb {
			k++
		}
	}
	return k
}

// electLocked forgets silent members and decides whether this node is the
// gateway; it returns the roster if it is.
func (b *Bridge) electLocked(now time.Time) (rosterBody, bool) {
	self := b.n.ID()
	gw := true
	r := rosterBody{site: b.site, entries: []rosterEntry{{id: self, session: b.session, name: b.name}}}
	for id, m := range b.members {
		if now.Sub(m.seen) >= memberBeats*b.hb {
			delete(b.members, id)
			continue
		}
		if lessID(id, self) {
			gw = false
		}
		r.entries = append(r.entries, rosterEntry{id: id, session: m.session, name: m.name})
	}
	if gw != b.gateway {
		b.log.Info("hub: gateway role", "site", safetext.Line(b.site), "gateway", gw)
	}
	b.gateway = gw
	return r, gw
}

func lessID(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// beat publishes the heartbeat and, as the gateway, the roster.
func (b *Bridge) beat() {
	mb := memberBody{site: b.site, name: b.name}
	if err := b.pub(b.subjMembers, b.envelope(kindMember, b.subjMembers, mb.append(nil))); err != nil {
		b.log.Debug("hub: heartbeat not published", "err", err)
	}
	b.mu.Lock()
	r, gw := b.electLocked(time.Now())
	b.mu.Unlock()
	if gw {
		b.publishRoster(r)
	}
}

func (b *Bridge) publishRoster(r rosterBody) {
	b.log.Debug("hub: roster", "entries", len(r.entries))
	if err := b.pub(b.subjRoster, b.envelope(kindRoster, b.subjRoster, r.append(nil))); err != nil {
		b.log.Debug("hub: roster not published", "err", err)
	}
}

// bye tells the site and the others that this node leaves.
func (b *Bridge) bye() {
	mb := memberBody{site: b.site, name: b.name}
	for _, subj := range []string{b.subjMembers, b.subjRoster} {
		if err := b.pub(subj, b.envelope(kindBye, subj, mb.append(nil))); err != nil {
			return
		}
	}
	b.nc.FlushTimeout(time.Second)
}

// handlePresence takes a heartbeat, a roster or a goodbye.
func (b *Bridge) handlePresence(m *nats.Msg) {
	h, body, ok := b.openEnvelope(m, classPresence)
	if !ok {
		return
	}
	now := time.Now()
	switch {
	case h.kind == kindMember && m.Subject == b.subjMembers:
		mb, err := parseMember(body)
		if err != nil || mb.site != b.site {
			b.c.badDrop.Add(1)
			return
		}
		b.mu.Lock()
		old := b.members[h.sender]
		if old == nil && len(b.members) >= MaxPeersPerSite {
			b.mu.Unlock()
			b.c.refused.Add(1)
			return
		}
		b.members[h.sender] = &member{session: h.session, name: mb.name, seen: now}
		news := old == nil || old.session != h.session || old.name != mb.name
		b.mu.Unlock()
		if news {
			// A new member: it learns of this one now, not a heartbeat
			// later, and the gateway's roster (this one's, maybe) says so.
			b.beat()
		}
	case h.kind == kindBye && m.Subject == b.subjMembers:
		b.mu.Lock()
		delete(b.members, h.sender)
		r, gw := b.electLocked(now)
		b.mu.Unlock()
		if gw {
			b.publishRoster(r) // at once: this node may have just taken over
		}
	case h.kind == kindRoster && m.Subject == b.subjRoster:
		r, err := parseRoster(body)
		if err != nil {
			b.c.badDrop.Add(1)
			return
		}
		if r.site == b.site {
			return // this site's own gateway (or, briefly, two of them)
		}
		b.mu.Lock()
		news := false
		for _, e := range r.entries {
			old := b.view[e.id]
			if v := b.heardLocked(e.id, e.session, e.name, r.site, now); v != nil && (old == nil || old.bye) {
				news = true
			}
		}
		gw := b.gateway
		b.mu.Unlock()
		signal(b.notify)
		if news && gw {
			// A node new to this one is as new to the other gateways:
			// answer with this site's roster now, so that it learns of
			// this site at once rather than at the next heartbeat.
			signal(b.publish)
		}
	case h.kind == kindBye && m.Subject == b.subjRoster:
		b.mu.Lock()
		if v := b.view[h.sender]; v != nil && v.Instance == h.session {
			v.bye, v.seen = true, now
		}
		b.mu.Unlock()
		signal(b.notify)
	default:
		b.c.badDrop.Add(1)
	}
}

// heardLocked records that a peer of another site was listed or sent
// something: it returns its entry, or nil if it is not taken (this node, a
// member of this site, gone for this session, or over a bound).
func (b *Bridge) heardLocked(id, session uuid.UUID, name, site string, now time.Time) *remote {
	if id == b.n.ID() || site == b.site || b.members[id] != nil {
		return nil
	}
	v := b.view[id]
	if v == nil {
		if !b.roomLocked(site) {
			b.c.refused.Add(1)
			return nil
		}
		v = &remote{RemotePeer: mesh.RemotePeer{ID: id}}
		b.view[id] = v
	} else if v.bye && v.Instance == session {
		return nil // a roster sent before its goodbye
	}
	v.Instance, v.Name, v.Site, v.seen, v.bye = session, name, site, now, false
	return v
}

// roomLocked reports whether a new peer of site fits the bounds.
func (b *Bridge) roomLocked(site string) bool {
	if len(b.view) >= MaxRemotePeers {
		return false
	}
	inSite, sites := 0, map[string]bool{}
	for _, v := range b.view {
		sites[v.Site] = true
		if v.Site == site {
			inSite++
		}
	}
	return inSite < MaxPeersPerSite && (sites[site] || len(sites) < MaxSites)
}

// applyLoop is the one goroutine that tells the node of remote peers and
// hands it their messages, so that a peer's PeerJoined comes before its
// first message and its PeerLeft after its last.
func (b *Bridge) applyLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.hb / 5)
	defer t.Stop()
	told := map[uuid.UUID]mesh.RemotePeer{}
	for {
		select {
		case <-b.done:
			return
		case <-b.port.Done():
			<-b.done
			return
		case m := <-b.dataCh:
			b.handleData(m, told)
		case <-b.notify:
			b.reconcile(told)
		case <-t.C:
			b.reconcile(told)
		}
	}
}

// reconcile brings the node's remote peers in line with the view.
func (b *Bridge) reconcile(told map[uuid.UUID]mesh.RemotePeer) {
	now := time.Now()
	type down struct {
		id    uuid.UUID
		cause error
	}
	var ups []mesh.RemotePeer
	var downs []down
	b.mu.Lock()
	for id, v := range b.view {
		live := !v.bye && now.Sub(v.seen) < remoteBeats*b.hb
		if live {
			if told[id] != v.RemotePeer {
				ups = append(ups, v.RemotePeer)
			}
			continue
		}
		if _, ok := told[id]; ok {
			cause := ErrExpired
			if v.bye {
				cause = ErrLeft
			}
			downs = append(downs, down{id, cause})
		}
		if now.Sub(v.seen) >= remoteBeats*b.hb {
			delete(b.view, id) // a goodbye is remembered as long
		}
	}
	b.mu.Unlock()
	for _, d := range downs {
		b.port.PeerDown(d.id, d.cause)
		delete(told, d.id)
	}
	for _, rp := range ups {
		b.up(rp, told)
	}
	b.mu.Lock()
	b.told = len(told)
	b.mu.Unlock()
}

func (b *Bridge) up(rp mesh.RemotePeer, told map[uuid.UUID]mesh.RemotePeer) bool {
	if err := b.port.PeerUp(rp); err != nil {
		b.log.Debug("hub: remote peer not taken", "peer", safetext.Line(rp.Name), "err", err)
		return false
	}
	told[rp.ID] = rp
	return true
}

// handleData takes a message, request, reply or refusal for this node.
func (b *Bridge) handleData(m *nats.Msg, told map[uuid.UUID]mesh.RemotePeer) {
	h, body, ok := b.openEnvelope(m, classData)
	if !ok {
		return
	}
	d, err := parseData(body)
	if err != nil || !h.kind.data() || m.Subject != b.subjSelf {
		b.c.badDrop.Add(1)
		return
	}
	if d.site == b.site {
		b.c.badDrop.Add(1)
		b.warnOnce("samesite", "hub: a node of this node's own site sent through the hub; the nodes of one LAN must share a Site, and those of different LANs must not", "from", safetext.Line(d.name))
		return
	}
	b.mu.Lock()
	v := b.heardLocked(h.sender, h.session, d.name, d.site, time.Now())
	var rp mesh.RemotePeer
	if v != nil {
		rp = v.RemotePeer
	}
	b.mu.Unlock()
	if v == nil {
		b.c.badDrop.Add(1)
		return
	}
	if told[rp.ID] != rp && !b.up(rp, told) {
		b.c.badDrop.Add(1)
		return
	}
	var rk mesh.RelayKind
	switch h.kind {
	case kindMessage:
		rk = mesh.RelayMessage
	case kindRequest:
		rk = mesh.RelayRequest
	case kindReply:
		rk = mesh.RelayReply
	case kindRefuse:
		rk = mesh.RelayRefuse
	}
	if err := b.port.Deliver(rp.ID, mesh.RelayFrame{Kind: rk, ReqID: d.reqID, Body: d.frame}); err != nil {
		b.c.badDrop.Add(1)
		b.log.Debug("hub: message not delivered", "from", safetext.Line(rp.Name), "err", err)
		return
	}
	b.c.delivered.Add(1)
}
