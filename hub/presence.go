package hub

import (
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
)

// Presence. Every bridge publishes a heartbeat to its own site's subject;
// the bridged node of a site with the lowest id among those heard (the
// gateway) publishes the site's roster to every site. A node takes the
// peers of other sites' rosters as its remote peers. It reports one left
// when the gateway that listed it leaves it out (the gateway heard nothing
// from it for 3 heartbeats), or a successor does after that gateway fell
// silent (a dead gateway), or when no roster has listed it (and it sent
// nothing) for 6 heartbeats (a site gone). A gateway that dies is out of
// its site after 3 heartbeats; the next takes over at once, well within
// the 6 that remote sites wait: its site's peers stay.

const (
	memberBeats = 3 // heartbeats after which a silent member is out
	// remoteBeats: heartbeats after which a remote peer no roster listed
	// is gone. A site's gateway that dies is replaced after memberBeats
	// and a fifth (when the successor's roster lists the site's other
	// peers again): this must be well above that, or they would flap.
	remoteBeats = 6
	// takeoverBeats: a gateway silent for as many heartbeats (it publishes
	// every one) has been replaced when another publishes its site's
	// roster; a live one has not.
	takeoverBeats = 2
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
func (b *Bridge) electLocked(now time.Time) (wire.RosterBody, bool) {
	self := b.n.ID()
	gw := true
	r := wire.RosterBody{Site: b.site, Entries: []wire.RosterEntry{{ID: self, Session: b.session, Name: b.name}}}
	for id, m := range b.members {
		if now.Sub(m.seen) >= memberBeats*b.hb {
			delete(b.members, id)
			continue
		}
		if lessID(id, self) {
			gw = false
		}
		r.Entries = append(r.Entries, wire.RosterEntry{ID: id, Session: m.session, Name: m.name})
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
	mb := wire.MemberBody{Site: b.site, Name: b.name}
	if err := b.pub(b.subjMembers, b.envelope(wire.KindMember, b.subjMembers, mb.Append(nil))); err != nil {
		b.log.Debug("hub: heartbeat not published", "err", err)
	}
	b.mu.Lock()
	r, gw := b.electLocked(time.Now())
	b.mu.Unlock()
	if gw {
		b.publishRoster(r)
	}
}

func (b *Bridge) publishRoster(r wire.RosterBody) {
	b.log.Debug("hub: roster", "entries", len(r.Entries))
	if err := b.pub(b.subjRoster, b.envelope(wire.KindRoster, b.subjRoster, r.Append(nil))); err != nil {
		b.log.Debug("hub: roster not published", "err", err)
	}
}

// bye tells the remote peers, the site and the others that this node
// leaves. What the node sent goes first: it is flushed, and each remote
// peer gets its goodbye on its own node subject, after the messages to it
// (NATS keeps one publisher's order on one subject, not across subjects),
// so that it reports this node left only after taking them.
func (b *Bridge) bye() {
	if !b.nc.IsConnected() {
		return // nothing would leave: the others expire this node
	}
	b.nc.FlushTimeout(time.Second)
	mbody := wire.MemberBody{Site: b.site, Name: b.name}
	mb := mbody.Append(nil)
	b.mu.Lock()
	subjs := make([]string, 0, len(b.view)+2)
	for id, v := range b.view {
		if !v.bye {
			subjs = append(subjs, wire.SubjectNode(b.port.Mesh(), id))
		}
	}
	b.mu.Unlock()
	subjs = append(subjs, b.subjMembers, b.subjRoster)
	for _, subj := range subjs {
		if err := b.pub(subj, b.envelope(wire.KindBye, subj, mb)); err != nil {
			return
		}
	}
	b.nc.FlushTimeout(time.Second)
}

// handlePresence takes a heartbeat, a roster or a goodbye.
func (b *Bridge) handlePresence(m *nats.Msg) {
	h, body, ok := b.openEnvelope(m, wire.ClassPresence)
	if !ok {
		return
	}
	now := time.Now()
	switch {
	case h.Kind == wire.KindMember && m.Subject == b.subjMembers:
		mb, err := wire.ParseMember(body)
		if err != nil || mb.Site != b.site {
			b.c.badDrop.Add(1)
			return
		}
		b.mu.Lock()
		old := b.members[h.Sender]
		if old == nil && len(b.members) >= MaxPeersPerSite {
			b.mu.Unlock()
			b.c.refused.Add(1)
			return
		}
		b.members[h.Sender] = &member{session: h.Session, name: mb.Name, seen: now}
		news := old == nil || old.session != h.Session || old.name != mb.Name
		b.mu.Unlock()
		if news {
			// A new member: it learns of this one now, not a heartbeat
			// later, and the gateway's roster (this one's, maybe) says so.
			b.beat()
		}
	case h.Kind == wire.KindBye && m.Subject == b.subjMembers:
		b.mu.Lock()
		delete(b.members, h.Sender)
		r, gw := b.electLocked(now)
		b.mu.Unlock()
		if gw {
			b.publishRoster(r) // at once: this node may have just taken over
		}
	case h.Kind == wire.KindRoster && m.Subject == b.subjRoster:
		r, err := wire.ParseRoster(body)
		if err != nil {
			b.c.badDrop.Add(1)
			return
		}
		if r.Site == b.site {
			return // this site's own gateway (or, briefly, two of them)
		}
		b.mu.Lock()
		news := false
		lister := [2]uuid.UUID{h.Sender, h.Session}
		listed := make(map[uuid.UUID]bool, len(r.Entries))
		for _, e := range r.Entries {
			old := b.view[e.ID]
			v := b.heardLocked(e.ID, e.Session, e.Name, r.Site, now, false)
			if v == nil {
				continue
			}
			if old == nil || old.bye {
				news = true
			}
			v.lister, listed[e.ID] = lister, true
		}
		b.noteListerLocked(lister, now)
		// What this gateway listed before and no longer does, it dropped:
		// a member silent for memberBeats. So did a successor, what a
		// gateway silent for takeoverBeats listed and it does not list (a
		// dead gateway, itself). Another gateway's roster while the one
		// that listed a peer still publishes (a newcomer's, whose first
		// rosters list only what it has heard so far) drops nothing. A
		// peer that spoke to this node within memberBeats stays.
		for id, v := range b.view {
			if v.Site != r.Site || listed[id] || v.bye || v.lister == ([2]uuid.UUID{}) || now.Sub(v.spoke) < memberBeats*b.hb {
				continue
			}
			at, known := b.listers[v.lister]
			if v.lister == lister || (known && now.Sub(at) >= takeoverBeats*b.hb) {
				v.lister, v.seen = [2]uuid.UUID{}, now.Add(-remoteBeats*b.hb)
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
	case h.Kind == wire.KindBye && m.Subject == b.subjRoster:
		// The peer is reported left once its goodbye on this node's own
		// subject comes, after its messages; a peer that did not know this
		// node sends none there, so one heartbeat later at the latest.
		b.mu.Lock()
		if v := b.view[h.Sender]; v != nil && v.Instance == h.Session {
			v.sayBye(now)
		}
		b.mu.Unlock()
		signal(b.notify)
	default:
		b.c.badDrop.Add(1)
	}
}

// heardLocked records that a peer of another site was listed or sent
// something (data: a message): it returns its entry, or nil if it is not
// taken (this node, a member of this site, gone for this session, or over
// a bound).
func (b *Bridge) heardLocked(id, session uuid.UUID, name, site string, now time.Time, data bool) *remote {
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
		if data && !v.final {
			return v // a message sent before its goodbye to this node
		}
		return nil // a roster sent before its goodbye
	}
	v.Instance, v.Name, v.Site, v.seen, v.bye, v.final = session, name, site, now, false, false
	if data {
		v.spoke = now
	}
	return v
}

// noteListerLocked records a roster of lister now, forgetting gateways
// silent for remoteBeats; past MaxRemotePeers gateways it records no new
// one (whose peers then expire after remoteBeats, as before any roster).
func (b *Bridge) noteListerLocked(lister [2]uuid.UUID, now time.Time) {
	if _, ok := b.listers[lister]; !ok && len(b.listers) >= MaxRemotePeers {
		for l, at := range b.listers {
			if now.Sub(at) >= remoteBeats*b.hb {
				delete(b.listers, l)
			}
		}
		if len(b.listers) >= MaxRemotePeers {
			return
		}
	}
	b.listers[lister] = now
}

// sayBye records that the peer said goodbye (for its current session).
func (v *remote) sayBye(now time.Time) {
	if !v.bye {
		v.bye, v.byeAt = true, now
	}
	v.seen = now
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
			b.drainData(told)
			b.reconcile(told)
		case <-t.C:
			b.drainData(told)
			b.reconcile(told)
		}
	}
}

// drainData takes the messages already queued before a reconciliation,
// so that a peer that said goodbye on the roster subject a while ago (this
// node's program being slow) is not reported left before its last
// messages, queued here, are delivered.
func (b *Bridge) drainData(told map[uuid.UUID]mesh.RemotePeer) {
	for k := len(b.dataCh); k > 0; k-- {
		select {
		case m := <-b.dataCh:
			b.handleData(m, told)
		case <-b.done:
			return
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
		if v.bye && !v.final && now.Sub(v.byeAt) < b.hb {
			continue // its last messages may still be on their way
		}
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
	h, body, ok := b.openEnvelope(m, wire.ClassData)
	if !ok {
		return
	}
	if m.Subject == b.subjSelf && h.Kind == wire.KindBye {
		// The sender's goodbye, after every message it sent this node.
		if _, err := wire.ParseMember(body); err != nil {
			b.c.badDrop.Add(1)
			return
		}
		b.mu.Lock()
		if v := b.view[h.Sender]; v != nil && v.Instance == h.Session {
			v.sayBye(time.Now())
			v.final = true
		}
		b.mu.Unlock()
		b.reconcile(told)
		return
	}
	d, err := wire.ParseData(body)
	if err != nil || !h.Kind.IsData() || m.Subject != b.subjSelf {
		b.c.badDrop.Add(1)
		return
	}
	if d.Site == b.site {
		b.c.badDrop.Add(1)
		b.warnOnce("samesite", "hub: a node of this node's own site sent through the hub; the nodes of one LAN must share a Site, and those of different LANs must not", "from", safetext.Line(d.Name))
		return
	}
	b.mu.Lock()
	v := b.heardLocked(h.Sender, h.Session, d.Name, d.Site, time.Now(), true)
	var rp mesh.RemotePeer
	var bye bool
	if v != nil {
		rp, bye = v.RemotePeer, v.bye
	}
	b.mu.Unlock()
	if v == nil {
		b.c.badDrop.Add(1)
		return
	}
	if _, ok := told[rp.ID]; bye && !ok {
		b.c.badDrop.Add(1) // already reported left: no second PeerJoined
		return
	}
	if told[rp.ID] != rp && !b.up(rp, told) {
		b.c.badDrop.Add(1)
		return
	}
	var rk mesh.RelayKind
	switch h.Kind {
	case wire.KindMessage:
		rk = mesh.RelayMessage
	case wire.KindRequest:
		rk = mesh.RelayRequest
	case wire.KindReply:
		rk = mesh.RelayReply
	case wire.KindRefuse:
		rk = mesh.RelayRefuse
	}
	if err := b.port.Deliver(rp.ID, mesh.RelayFrame{Kind: rk, ReqID: d.ReqID, Body: d.Frame}); err != nil {
		b.c.badDrop.Add(1)
		b.log.Debug("hub: message not delivered", "from", safetext.Line(rp.Name), "err", err)
		return
	}
	b.c.delivered.Add(1)
}
