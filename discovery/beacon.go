package discovery

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Wire constants of the beacon; SPEC.md section 7 gives the
// layout. They are part of the protocol and never change within a version.
const (
	beaconMagic   = "LMSH"
	BeaconVersion = 1 // the beacon format version this package writes and reads

	beaconFixedLen = 4 + 1 + 1 + 16 + 16 + 2 // magic, version, flags, ids, port
	// MaxBeaconLen is the largest beacon this package writes or accepts.
	// It keeps a beacon in one datagram on any link.
	MaxBeaconLen = 512
	// MaxMeshLen and MaxNameLen bound the two strings in bytes (UTF-8).
	MaxMeshLen = 64
	MaxNameLen = 255
)

// Flags carry the beacon's intent. The list is append-only; bits that this
// version does not define make the packet invalid.
type Flags uint8

const (
	// FlagQuery asks every node that hears the beacon to answer with its
	// own beacon at once; a starting node sends it so that it finds the
	// others in about one round trip.
	FlagQuery Flags = 1 << iota
	// FlagLeaving says the node is shutting down; receivers report it Lost
	// at once rather than after LostAfter.
	FlagLeaving

	knownFlags = FlagQuery | FlagLeaving
)

// Beacon is one announcement of a node, as carried in a UDP datagram.
type Beacon struct {
	Flags    Flags
	ID       uuid.UUID // the node's stable identity
	Instance uuid.UUID // changes every time the node's program starts
	Port     uint16    // the TCP port the node accepts links on; never 0
	Mesh     string    // the mesh name; 1..MaxMeshLen bytes of UTF-8
	Name     string    // a human-readable node name; 0..MaxNameLen bytes of UTF-8

	// Keyed beacons only (AppendSigned, ParseSignedBeacon):
	KeyID meshkey.ID // the id of the key that signs it
	Seq   uint64     // grows with every beacon an instance sends; never 0
	Nonce uint64     // a query's random nonce, echoed in the answers to it; 0: none
}

// AppendBinary appends the wire form of b to dst. It fails, leaving dst
// unchanged, for a beacon that ParseBeacon would reject.
func (b Beacon) AppendBinary(dst []byte) ([]byte, error) {
	if err := b.validate(); err != nil {
		return dst, err
	}
	dst = append(dst, beaconMagic...)
	dst = append(dst, BeaconVersion, byte(b.Flags))
	dst = append(dst, b.ID[:]...)
	dst = append(dst, b.Instance[:]...)
	dst = binary.BigEndian.AppendUint16(dst, b.Port)
	dst = append(dst, byte(len(b.Mesh)))
	dst = append(dst, b.Mesh...)
	dst = append(dst, byte(len(b.Name)))
	dst = append(dst, b.Name...)
	return dst, nil
}

func (b Beacon) validate() error {
	switch {
	case b.Flags&^knownFlags != 0:
		return fmt.Errorf("%w: %#02x", ErrBeaconFlags, uint8(b.Flags))
	case b.ID == uuid.Nil:
		return ErrBeaconNodeID
	case b.Instance == uuid.Nil:
		return ErrBeaconInstance
	case b.Port == 0:
		return ErrBeaconPort
	case len(b.Mesh) == 0 || len(b.Mesh) > MaxMeshLen:
		return fmt.Errorf("%w: mesh name of %d bytes", ErrBeaconLength, len(b.Mesh))
	case len(b.Name) > MaxNameLen:
		return fmt.Errorf("%w: node name of %d bytes", ErrBeaconLength, len(b.Name))
	case !utf8.ValidString(b.Mesh) || !utf8.ValidString(b.Name):
		return ErrBeaconUTF8
	}
	return nil
}

// ParseBeacon decodes one datagram. Other programs use the same ports, so
// it trusts nothing: wrong magic, an unknown version or flag, a nil id, a
// zero port, a length that does not match, trailing bytes or names that are
// not UTF-8 all fail with one of the ErrBeacon sentinels.
func ParseBeacon(p []byte) (Beacon, error) {
	var b Beacon
	if len(p) > MaxBeaconLen {
		return b, fmt.Errorf("%w: %d bytes", ErrBeaconLength, len(p))
	}
	if len(p) < len(beaconMagic) || string(p[:len(beaconMagic)]) != beaconMagic {
		return b, ErrBeaconMagic
	}
	if len(p) < beaconFixedLen+2 {
		return b, fmt.Errorf("%w: %d bytes is short", ErrBeaconLength, len(p))
	}
	if p[4] != BeaconVersion {
		return b, fmt.Errorf("%w: %d", ErrBeaconVersion, p[4])
	}
	b.Flags = Flags(p[5])
	copy(b.ID[:], p[6:22])
	copy(b.Instance[:], p[22:38])
	b.Port = binary.BigEndian.Uint16(p[38:40])
	var err error
	if b.Mesh, b.Name, err = parseNames(p[40:]); err != nil {
		return Beacon{}, err
	}
	if err := b.validate(); err != nil {
		return Beacon{}, err
	}
	return b, nil
}

// parseNames reads the end of every beacon: the mesh name and the node
// name, each after a length byte, and nothing after them.
func parseNames(p []byte) (mesh, name string, err error) {
	m, rest, ok := lengthPrefixed(p)
	if !ok {
		return "", "", fmt.Errorf("%w: mesh name overruns the packet", ErrBeaconLength)
	}
	n, rest, ok := lengthPrefixed(rest)
	if !ok {
		return "", "", fmt.Errorf("%w: node name overruns the packet", ErrBeaconLength)
	}
	if len(rest) != 0 {
		return "", "", fmt.Errorf("%w: %d trailing bytes", ErrBeaconLength, len(rest))
	}
	return string(m), string(n), nil
}

func lengthPrefixed(p []byte) (s, rest []byte, ok bool) {
	if len(p) < 1 || len(p)-1 < int(p[0]) {
		return nil, nil, false
	}
	n := int(p[0])
	return p[1 : 1+n], p[1+n:], true
}
