package discovery

import (
	"fmt"
	"net/netip"

	"github.com/lanmesh/lanmesh/safetext"
)

// Misconfigurations that keep nodes apart reach the user once per node,
// at Warn, in a sentence with the fix: another key or none (the same
// mesh), or another mesh name while this node has found nobody of its own.
// Each is logged once per node id (per mesh name for meshes), so a beacon a
// second costs a map look-up, not a line.

// keyMismatch tells of a beacon of this node's mesh that cannot be
// believed for want of the right key: p is the raw beacon.
func (d *Discoverer) keyMismatch(p []byte, from netip.AddrPort) {
	var b Beacon
	var err error
	if beaconVersion(p) == KeyedBeaconVersion {
		b, err = parseKeyedClaim(p)
	} else {
		b, err = ParseBeacon(p)
	}
	if err != nil || b.Mesh != d.cfg.Mesh || b.ID == d.self.ID {
		return
	}
	d.mu.Lock()
	full := len(d.warned) > maxWarned
	d.mu.Unlock()
	if full {
		return
	}
	who := describePeer(b, from)
	var msg string
	switch {
	case beaconVersion(p) == KeyedBeaconVersion && d.keys.Load() == nil:
		msg = fmt.Sprintf("heard %s with a mesh key; this node has none: they will never link (give this node the mesh's key: --key-file, --key or LANMESH_KEY)", who)
	case beaconVersion(p) == KeyedBeaconVersion:
		msg = fmt.Sprintf("heard %s signing with key %s, which this node does not hold: they will never link (give every node of the mesh the same key file)", who, b.KeyID)
	default:
		msg = fmt.Sprintf("heard %s without a mesh key; this node has one: they will never link (give that node the mesh's key, or run this one without)", who)
	}
	d.warnOnce("mismatch "+b.ID.String(), msg, "peer", b.ID, "from", from)
}

// otherMesh tells of a node of another mesh, once per mesh name, while
// this node has found no node of its own mesh: then a mistyped --mesh is
// the likely reason.
func (d *Discoverer) otherMesh(b Beacon, from netip.AddrPort) {
	key := "mesh " + b.Mesh
	d.mu.Lock()
	told, alone := d.warned[key], len(d.tbl.peers) == 0
	d.mu.Unlock()
	if told || !alone || len(d.warned) > maxWarned {
		return
	}
	d.warnOnce(key, fmt.Sprintf("heard %s; this node is in mesh %q and has found none of it: nodes of two meshes never link (check --mesh)",
		describePeer(b, from), safetext.Line(d.cfg.Mesh)), "peer", b.ID, "from", from)
}

// maxWarned bounds what warnOnce remembers of forged names and ids.
const maxWarned = 4096

func describePeer(b Beacon, from netip.AddrPort) string {
	name := b.Name
	if name == "" {
		name = b.ID.String()[:8]
	}
	where := from.Addr().String()
	return fmt.Sprintf("%s at %s (mesh %s)", safetext.Line(name), where, safetext.Line(b.Mesh))
}
