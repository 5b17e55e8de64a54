package discovery

import (
	"container/list"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Keyed beacons (version 3, sealed); see SPEC.md section 10 for the layout.
// Everything but the magic, the version and the key id is encrypted, so a
// listener without the key learns only that a node of some keyed mesh is at
// the source address: not the mesh, the node's name, id or instance, nor
// its port.
const (
	// KeyedBeaconVersion is the version byte of a keyed beacon.
	KeyedBeaconVersion = 3

	sealNonceLen  = chacha20poly1305.NonceSize             // 12
	sealHeaderLen = 4 + 1 + 8 + sealNonceLen               // magic, version, key id, nonce
	sealFixedLen  = 1 + 16 + 16 + 8 + 8 + 2                // flags, ids, sequence, query nonce, port
	sealPad       = 64                                     // the plaintext is padded to a multiple of it
	sealTagLen    = chacha20poly1305.Overhead              // 16
	sealMinLen    = sealHeaderLen + sealPad + sealTagLen   // the shortest keyed beacon
	sealLabel     = "lanmesh beacon seal"                  // derives the seal key from the beacon MAC key
	maxSealedLen  = sealHeaderLen + 6*sealPad + sealTagLen // 413 bytes of plaintext at most, padded to 384
)

// BeaconMACLen is the length of a keyed beacon's authentication tag.
const BeaconMACLen = sealTagLen

// sealKey derives the beacon seal key of a mesh key: HMAC-SHA256 keyed with
// the beacon MAC key (itself an HKDF output of the mesh key and the mesh
// name) over a label.
func sealKey(key meshkey.Derived) cipher.AEAD {
	m := hmac.New(sha256.New, key.BeaconMAC[:])
	m.Write([]byte(sealLabel))
	aead, err := chacha20poly1305.New(m.Sum(nil))
	if err != nil {
		panic(fmt.Sprintf("discovery: seal key: %v", err)) // a 32-byte key never fails
	}
	return aead
}

// AppendSigned appends the keyed (version 3) wire form of b, sealed with
// key and naming key's id, under a fresh random nonce; b.Seq and b.Nonce go
// in as they are. It fails, leaving dst unchanged, for a beacon ParseBeacon
// would reject.
func (b Beacon) AppendSigned(dst []byte, key meshkey.Derived) ([]byte, error) {
	var nonce [sealNonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return dst, err
	}
	return b.appendSealed(dst, key, nonce)
}

func (b Beacon) appendSealed(dst []byte, key meshkey.Derived, nonce [sealNonceLen]byte) ([]byte, error) {
	if err := b.validate(); err != nil {
		return dst, err
	}
	var arr [6 * sealPad]byte
	pt := append(arr[:0], byte(b.Flags))
	pt = append(pt, b.ID[:]...)
	pt = append(pt, b.Instance[:]...)
	pt = binary.BigEndian.AppendUint64(pt, b.Seq)
	pt = binary.BigEndian.AppendUint64(pt, b.Nonce)
	pt = binary.BigEndian.AppendUint16(pt, b.Port)
	pt = append(pt, byte(len(b.Mesh)))
	pt = append(pt, b.Mesh...)
	pt = append(pt, byte(len(b.Name)))
	pt = append(pt, b.Name...)
	for len(pt)%sealPad != 0 {
		pt = append(pt, 0)
	}
	start := len(dst)
	dst = append(dst, beaconMagic...)
	dst = append(dst, KeyedBeaconVersion)
	dst = append(dst, key.ID[:]...)
	dst = append(dst, nonce[:]...)
	return sealKey(key).Seal(dst, nonce[:], pt, dst[start:]), nil
}

// ParseSignedBeacon decodes a keyed (sealed) beacon. Before it reads
// anything past the key id it finds the key of that id in keys
// (ErrBeaconKey) and opens the sealed part (ErrBeaconMAC: forged, changed,
// or sealed under another key); then it applies ParseBeacon's rules to
// what it opened, and requires the padding to be zeros. The returned
// Beacon's KeyID says which key sealed it.
func ParseSignedBeacon(p []byte, keys *meshkey.Set) (Beacon, error) {
	switch {
	case len(p) > MaxBeaconLen:
		return Beacon{}, fmt.Errorf("%w: %d bytes", ErrBeaconLength, len(p))
	case len(p) < len(beaconMagic) || string(p[:len(beaconMagic)]) != beaconMagic:
		return Beacon{}, ErrBeaconMagic
	case len(p) < 5 || p[4] != KeyedBeaconVersion:
		if len(p) < 5 {
			return Beacon{}, fmt.Errorf("%w: %d bytes is short", ErrBeaconLength, len(p))
		}
		return Beacon{}, fmt.Errorf("%w: %d", ErrBeaconVersion, p[4])
	case len(p) < sealMinLen || len(p) > maxSealedLen || (len(p)-sealHeaderLen-sealTagLen)%sealPad != 0:
		return Beacon{}, fmt.Errorf("%w: %d bytes is not a sealed beacon's length", ErrBeaconLength, len(p))
	}
	id := meshkey.ID(p[5:13])
	key, ok := keys.Lookup(id)
	if !ok {
		return Beacon{}, fmt.Errorf("%w: key id %s", ErrBeaconKey, id)
	}
	var arr [6 * sealPad]byte
	pt, err := sealKey(key).Open(arr[:0], p[13:sealHeaderLen], p[sealHeaderLen:], p[:sealHeaderLen])
	if err != nil {
		return Beacon{}, fmt.Errorf("%w: key id %s", ErrBeaconMAC, id)
	}
	b := Beacon{Flags: Flags(pt[0]), KeyID: id}
	copy(b.ID[:], pt[1:17])
	copy(b.Instance[:], pt[17:33])
	b.Seq = binary.BigEndian.Uint64(pt[33:41])
	b.Nonce = binary.BigEndian.Uint64(pt[41:49])
	b.Port = binary.BigEndian.Uint16(pt[49:51])
	names := pt[sealFixedLen:]
	// The names end where the padding (zeros, less than sealPad of them)
	// begins; find that end from the two length bytes.
	m, rest, ok := lengthPrefixed(names)
	if !ok {
		return Beacon{}, fmt.Errorf("%w: mesh name overruns the beacon", ErrBeaconLength)
	}
	n, rest, ok := lengthPrefixed(rest)
	if !ok {
		return Beacon{}, fmt.Errorf("%w: node name overruns the beacon", ErrBeaconLength)
	}
	if len(rest) >= sealPad || !allZero(rest) {
		return Beacon{}, fmt.Errorf("%w: bad padding", ErrBeaconLength)
	}
	b.Mesh, b.Name = string(m), string(n)
	if b.Seq == 0 {
		return Beacon{}, fmt.Errorf("%w: sequence number 0", ErrBeaconLength)
	}
	if err := b.validate(); err != nil {
		return Beacon{}, err
	}
	return b, nil
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
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
