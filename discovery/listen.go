package discovery

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Heard is a beacon heard by a Listener: what some node of some mesh
// claims. Nothing in it is proven unless Verified.
type Heard struct {
	Beacon
	// From is the datagram's source; Beacon.Port is the node's TCP port.
	From netip.AddrPort
	// Keyed: a keyed beacon (version 2). KeyID names its key.
	Keyed bool
	// Verified: keyed, and its MAC checks under a key of the Listener's
	// keyring for its mesh.
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
	conn *packetConn
	keys meshkey.Keyring

	// mu guards derived and echo.
	mu      sync.Mutex
	derived map[string]*meshkey.Set
	echo    []byte // the payload of the last echo probe
}

// echoMagic starts an echo probe: a datagram that no beacon parser
// accepts (nodes count it as rejected and ignore it), sent by a Listener
// to learn whether broadcasts leave this host and come back.
const echoMagic = "LMEC"

// NewListener binds the beacon port (shared). kr, when keyed, is used to
// verify keyed beacons (of any mesh: the key is derived per mesh name).
func NewListener(beaconPort int, kr meshkey.Keyring) (*Listener, error) {
	conn, err := listenShared(beaconPort)
	if err != nil {
		return nil, fmt.Errorf("%w %d: %w", ErrListen, beaconPort, err)
	}
	return &Listener{conn: conn, keys: kr, derived: make(map[string]*meshkey.Set)}, nil
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
		b, err := parseKeyedClaim(p)
		if err != nil {
			return Heard{}, false
		}
		h := Heard{Beacon: b, Keyed: true}
		if keys := l.keysFor(b.Mesh); keys != nil {
			_, err := ParseSignedBeacon(p, keys)
			h.Verified = err == nil
		}
		return h, true
	}
	return Heard{}, false
}

func (l *Listener) keysFor(mesh string) *meshkey.Set {
	if !l.keys.Keyed() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.derived[mesh]
	if !ok {
		if len(l.derived) > 64 {
			clear(l.derived) // forged mesh names must not grow it
		}
		s = l.keys.Derive(mesh)
		l.derived[mesh] = s
	}
	return s
}

// parseKeyedClaim reads a keyed beacon without checking its MAC: what it
// claims, for a person to look at, never to act on.
func parseKeyedClaim(p []byte) (Beacon, error) {
	switch {
	case len(p) > MaxBeaconLen:
		return Beacon{}, fmt.Errorf("%w: %d bytes", ErrBeaconLength, len(p))
	case len(p) < keyedMinLen:
		return Beacon{}, fmt.Errorf("%w: %d bytes is short", ErrBeaconLength, len(p))
	}
	b := Beacon{Flags: Flags(p[5]), KeyID: meshkey.ID(p[6:14])}
	copy(b.ID[:], p[14:30])
	copy(b.Instance[:], p[30:46])
	b.Seq = binary.BigEndian.Uint64(p[46:54])
	b.Nonce = binary.BigEndian.Uint64(p[54:62])
	b.Port = binary.BigEndian.Uint16(p[62:64])
	var err error
	if b.Mesh, b.Name, err = parseNames(p[64 : len(p)-BeaconMACLen]); err != nil {
		return Beacon{}, err
	}
	return b, b.validate()
}
