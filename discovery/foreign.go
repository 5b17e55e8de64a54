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

// keyMismatch tells of a beacon that cannot be believed for want of the
// right key: p is the raw beacon. A sealed beacon that this node cannot
// open says nothing of its mesh: it may well be a node of another keyed
// mesh. So it is told only while this node has found none of its own (then
// a missing or wrong key is the likely reason), once per address and key.
func (d *Discoverer) keyMismatch(p []byte, from netip.AddrPort) {
	d.mu.Lock()
	full, alone := len(d.warned) > maxWarned, len(d.tbl.peers) == 0
	d.mu.Unlock()
	if full {
		return
	}
	if beaconVersion(p) == KeyedBeaconVersion {
		if !alone {
			return
		}
		id, err := keyedHeader(p)
		if err != nil {
			return
		}
		mesh := safetext.Line(d.cfg.Mesh)
		var msg string
		if d.keys.Load() == nil {
			msg = fmt.Sprintf("heard a node at %s sealing its beacons with a mesh key (key id %s); this node has none, so if it is of mesh %s the two cannot link (give this node the mesh's key: --key-file, --key or LANMESH_KEY)", from.Addr(), id, mesh)
		} else {
			msg = fmt.Sprintf("heard a node at %s sealing its beacons with key id %s, which this node's key for mesh %s does not open, so if it is of this mesh the two cannot link (give every node of the mesh the same key file and mesh name)", from.Addr(), id, mesh)
		}
		d.warnOnce("mismatch "+from.Addr().String()+" "+id.String(), msg, "from", from, "key", id)
		return
	}
	b, err := ParseBeacon(p)
	if err != nil || b.Mesh != d.cfg.Mesh || b.ID == d.self.ID {
		return
	}
	msg := fmt.Sprintf("heard %s without a mesh key; this node has one: they will never link (give that node the mesh's key, or run this one without)", describePeer(b, from))
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
