package discovery

import (
	"container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Keyed beacons (version 2); SPEC.md section 10 gives the layout.
const (
	// KeyedBeaconVersion is the version byte of a keyed beacon.
	KeyedBeaconVersion = 2

	keyedFixedLen = 4 + 1 + 1 + 8 + 16 + 16 + 8 + 8 + 2 // up to the mesh name
	// BeaconMACLen is the length of a keyed beacon's truncated HMAC-SHA256.
	BeaconMACLen = 16
	keyedMinLen  = keyedFixedLen + 1 + 1 + 1 + BeaconMACLen
)

// AppendSigned appends the keyed (version 2) wire form of b, signed with
// key's beacon MAC key and naming key's id; b.Seq and b.Nonce go in as
// they are. It fails, leaving dst unchanged, for a beacon ParseBeacon
// would reject.
func (b Beacon) AppendSigned(dst []byte, key meshkey.Derived) ([]byte, error) {
	if err := b.validate(); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, beaconMagic...)
	dst = append(dst, KeyedBeaconVersion, byte(b.Flags))
	dst = append(dst, key.ID[:]...)
	dst = append(dst, b.ID[:]...)
	dst = append(dst, b.Instance[:]...)
	dst = binary.BigEndian.AppendUint64(dst, b.Seq)
	dst = binary.BigEndian.AppendUint64(dst, b.Nonce)
	dst = binary.BigEndian.AppendUint16(dst, b.Port)
	dst = append(dst, byte(len(b.Mesh)))
	dst = append(dst, b.Mesh...)
	dst = append(dst, byte(len(b.Name)))
	dst = append(dst, b.Name...)
	m := hmac.New(sha256.New, key.BeaconMAC[:])
	m.Write(dst[start:])
	var sum [sha256.Size]byte
	return append(dst, m.Sum(sum[:0])[:BeaconMACLen]...), nil
}

// ParseSignedBeacon decodes a keyed beacon. Before it parses anything past
// the key id it finds the key of that id in keys (ErrBeaconKey) and checks
// the MAC over everything before it with a constant-time compare
// (ErrBeaconMAC); then it applies ParseBeacon's rules to the rest. The
// returned Beacon's KeyID says which key signed it.
func ParseSignedBeacon(p []byte, keys *meshkey.Set) (Beacon, error) {
	switch {
	case len(p) > MaxBeaconLen:
		return Beacon{}, fmt.Errorf("%w: %d bytes", ErrBeaconLength, len(p))
	case len(p) < len(beaconMagic) || string(p[:len(beaconMagic)]) != beaconMagic:
		return Beacon{}, ErrBeaconMagic
	case len(p) < keyedMinLen:
		return Beacon{}, fmt.Errorf("%w: %d bytes is short", ErrBeaconLength, len(p))
	case p[4] != KeyedBeaconVersion:
		return Beacon{}, fmt.Errorf("%w: %d", ErrBeaconVersion, p[4])
	}
	id := meshkey.ID(p[6:14])
	key, ok := keys.Lookup(id)
	if !ok {
		return Beacon{}, fmt.Errorf("%w: key id %s", ErrBeaconKey, id)
	}
	body, tag := p[:len(p)-BeaconMACLen], p[len(p)-BeaconMACLen:]
	m := hmac.New(sha256.New, key.BeaconMAC[:])
	m.Write(body)
	var sum [sha256.Size]byte
	if !hmac.Equal(m.Sum(sum[:0])[:BeaconMACLen], tag) {
		return Beacon{}, fmt.Errorf("%w: key id %s", ErrBeaconMAC, id)
	}
	b := Beacon{Flags: Flags(p[5]), KeyID: id}
	copy(b.ID[:], p[14:30])
	copy(b.Instance[:], p[30:46])
	b.Seq = binary.BigEndian.Uint64(p[46:54])
	b.Nonce = binary.BigEndian.Uint64(p[54:62])
	b.Port = binary.BigEndian.Uint16(p[62:64])
	var err error
	if b.Mesh, b.Name, err = parseNames(body[64:]); err != nil {
		return Beacon{}, err
	}
	if b.Seq == 0 {
		return Beacon{}, fmt.Errorf("%w: sequence number 0", ErrBeaconLength)
	}
	if err := b.validate(); err != nil {
		return Beacon{}, err
	}
	return b, nil
}

// beaconVersion returns the version byte of something that starts like a
// beacon, or 0.
func beaconVersion(p []byte) byte {
	if len(p) < 5 || string(p[:4]) != beaconMagic {
		return 0
	}
	return p[4]
}

// replayGuard remembers, for the nodes whose keyed beacons checked out, the
// highest sequence number of their current instance and a few retired
// instances, so that a recorded beacon played again is dropped. It holds
// at most max nodes, forgetting the least recently heard. Not safe for
// concurrent use (the Discoverer holds its mu).
type replayGuard struct {
	max  int
	byID map[uuid.UUID]*list.Element
	lru  list.List // of *replayEntry, most recent first
}

type replayEntry struct {
	id       uuid.UUID
	instance uuid.UUID
	seq      uint64
	retired  []uuid.UUID
}

func newReplayGuard(max int) *replayGuard {
	return &replayGuard{max: max, byID: make(map[uuid.UUID]*list.Element)}
}

// fresh reports whether a beacon (id, instance, seq) is new, and records it.
// Within an instance the sequence must grow (or, with sameOK, stay: an mDNS
// server repeats one signed record); a retired instance is refused; another
// instance retires the current one.
func (g *replayGuard) fresh(id, instance uuid.UUID, seq uint64, sameOK bool) bool {
	el, ok := g.byID[id]
	if !ok {
		if g.lru.Len() >= g.max {
			old := g.lru.Back()
			delete(g.byID, old.Value.(*replayEntry).id)
			g.lru.Remove(old)
		}
		g.byID[id] = g.lru.PushFront(&replayEntry{id: id, instance: instance, seq: seq})
		return true
	}
	g.lru.MoveToFront(el)
	e := el.Value.(*replayEntry)
	switch {
	case e.instance == instance:
		if seq < e.seq || (seq == e.seq && !sameOK) {
			return false
		}
		e.seq = seq
		return true
	case slices.Contains(e.retired, instance):
		return false
	}
	e.retired = append(e.retired, e.instance)
	if len(e.retired) > maxRetired {
		e.retired = e.retired[len(e.retired)-maxRetired:]
	}
	e.instance, e.seq = instance, seq
	return true
}

func (g *replayGuard) len() int { return g.lru.Len() }
