package discovery

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Heard is a beacon heard by a Listener: what some node of some mesh
// claims. Nothing in it is proven unless Verified.
type Heard struct {
	Beacon
	// From is the datagram's source; Beacon.Port is the node's TCP port.
	From netip.AddrPort
	// Keyed: a keyed beacon (sealed, version 3). KeyID names its key.
	Keyed bool
	// Verified: keyed, and it opened under a key of the Listener's keyring
	// for one of the mesh names it was given. A keyed beacon that did not
	// open tells nothing but its key id and source: its Mesh, Name and Port
	// are empty, and its ID is made up from the source address and the key
	// id (OpaqueID), so that one node is one entry.
	Verified bool
	At       time.Time
}

// Addr is where the node says it accepts links.
func (h Heard) Addr() netip.AddrPort { return netip.AddrPortFrom(h.From.Addr(), h.Port) }

// Listener hears the beacons of every mesh on a beacon port without
// sending any, so that nobody takes it for a node: the passive half of
// discovery, for tools that look at a LAN (lanmesh browse, doctor, peers).
// It shares the port with the nodes of its host.
type Listener struct {
	conn   *packetConn
	opener *keyOpener

	mu   sync.Mutex // guards echo
	echo []byte     // the payload of the last echo probe
}

// keyOpener opens sealed beacons with a keyring's keys, derived for a few
// mesh names: a sealed beacon does not say its mesh, so a looker can open
// only those of the meshes it names.
type keyOpener struct {
	keys   meshkey.Keyring
	meshes []string

	mu      sync.Mutex // guards derived
	derived map[string]*meshkey.Set
}

func newKeyOpener(kr meshkey.Keyring, meshes []string) *keyOpener {
	return &keyOpener{keys: kr, meshes: meshes, derived: make(map[string]*meshkey.Set)}
}

// open reads a sealed beacon: verified when a key of one of the meshes
// opens it, otherwise only its key id.
func (o *keyOpener) open(p []byte) (Heard, bool) {
	id, err := keyedHeader(p)
	if err != nil {
		return Heard{}, false
	}
	if o.keys.Keyed() {
		for _, m := range o.meshes {
			if b, err := ParseSignedBeacon(p, o.keysFor(m)); err == nil {
				return Heard{Beacon: b, Keyed: true, Verified: true}, true
			}
		}
	}
	return Heard{Beacon: Beacon{KeyID: id}, Keyed: true}, true
}

func (o *keyOpener) keysFor(mesh string) *meshkey.Set {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.derived[mesh]
	if !ok {
		s = o.keys.Derive(mesh)
		o.derived[mesh] = s
	}
	return s
}

// OpaqueID stands for a keyed node whose beacons could not be opened: the
// same source address and key id give the same id.
func OpaqueID(from netip.Addr, key meshkey.ID) uuid.UUID {
	return uuid.NewSHA1(uuid.Nil, append(from.AsSlice(), key[:]...))
}

// echoMagic starts an echo probe: a datagram that no beacon parser
// accepts (nodes count it as rejected and ignore it), sent by a Listener
// to learn whether broadcasts leave this host and come back.
const echoMagic = "LMEC"

// NewListener binds the beacon port (shared). kr, when keyed, opens the
// sealed beacons of the named meshes (the key is derived per mesh name,
// and a sealed beacon does not say its mesh); others are heard as opaque.
func NewListener(beaconPort int, kr meshkey.Keyring, meshes ...string) (*Listener, error) {
	conn, err := listenShared(beaconPort)
	if err != nil {
		return nil, fmt.Errorf("%w %d: %w", ErrListen, beaconPort, err)
	}
	return &Listener{conn: conn, opener: newKeyOpener(kr, meshes)}, nil
}

// Close closes the socket; Run returns.
func (l *Listener) Close() error { return l.conn.close() }

// SendEcho sends one echo probe to each destination; Run reports the ones
// it hears back. It returns the first send error, with its destination.
func (l *Listener) SendEcho(dsts []netip.AddrPort) error {
	p := make([]byte, len(echoMagic)+16)
	copy(p, echoMagic)
	if _, err := rand.Read(p[len(echoMagic):]); err != nil {
		return err
	}
	l.mu.Lock()
	l.echo = p
	l.mu.Unlock()
	return l.conn.writeTo(p, dsts)
}

// Run reads datagrams until ctx ends or the socket is closed, calling
// onBeacon for each beacon (of any mesh, keyed or not) and onEcho for each
// echo probe of this Listener that came back, on the calling goroutine.
// Either may be nil.
func (l *Listener) Run(ctx context.Context, onBeacon func(Heard), onEcho func(from netip.AddrPort)) error {
	stop := context.AfterFunc(ctx, func() { l.conn.close() })
	defer stop()
	buf := make([]byte, MaxBeaconLen+1)
	for {
		n, from, err := l.conn.readFrom(buf)
		if err != nil {
			if ctx.Err() != nil || isClosedErr(err) {
				return nil
			}
			return err
		}
		p := buf[:n]
		if l.isEcho(p) {
			if onEcho != nil {
				onEcho(from)
			}
			continue
		}
		h, ok := l.parse(p)
		if !ok || onBeacon == nil {
			continue
		}
		h.From, h.At = from, time.Now()
		if h.Keyed && !h.Verified {
			h.ID = OpaqueID(from.Addr(), h.KeyID)
		}
		onBeacon(h)
	}
}

func (l *Listener) isEcho(p []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.echo != nil && string(p) == string(l.echo)
}

func (l *Listener) parse(p []byte) (Heard, bool) {
	switch beaconVersion(p) {
	case BeaconVersion:
		b, err := ParseBeacon(p)
		return Heard{Beacon: b}, err == nil
	case KeyedBeaconVersion:
		return l.opener.open(p)
	}
	return Heard{}, false
}

// keyedHeader reads the clear part of a sealed beacon, its key id, and
// checks its length: all that can be known of it without its key.
func keyedHeader(p []byte) (meshkey.ID, error) {
	switch {
	case len(p) < sealHeaderLen || string(p[:len(beaconMagic)]) != beaconMagic || p[4] != KeyedBeaconVersion:
		return meshkey.ID{}, ErrBeaconMagic
	case len(p) < sealMinLen || len(p) > maxSealedLen || (len(p)-sealHeaderLen-sealTagLen)%sealPad != 0:
		return meshkey.ID{}, fmt.Errorf("%w: %d bytes is not a sealed beacon's length", ErrBeaconLength, len(p))
	}
	return meshkey.ID(p[5:13]), nil
}
