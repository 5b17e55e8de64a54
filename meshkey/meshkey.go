// Package meshkey holds the mesh key: the 32-byte secret that every node of
// a keyed mesh shares, its text form, and the sub-keys derived from it for
// the link handshake (package mesh) and the beacons (package discovery).
//
// Make a key once and give it to every node:
//
//	k, _ := meshkey.Generate(rand.Reader)
//	fmt.Println(k) // 52 characters of base32 in groups of four
//
//	k, err := meshkey.Parse(text) // case and dashes do not matter
//	cfg.Keyring = meshkey.Keyring{Primary: k}
//
// A mesh without a key sends its links and beacons in the clear; a keyed
// node neither hears unkeyed beacons nor accepts unkeyed links.
//
// # Derivation
//
// The key itself never leaves the node. For a mesh name m, HKDF-SHA256
// (RFC 5869) with the key as input keying material and the salt
// "lanmesh v1" || m gives three independent values, each by its info label:
//
//	info "lanmesh psk"        32 bytes  the Noise pre-shared key of links
//	info "lanmesh beacon mac" 32 bytes  the HMAC-SHA256 key of beacons
//	info "lanmesh key id"      8 bytes  the public key id
//
// The key id travels in the clear (in the link preamble and in beacons) so
// that a receiver picks the right key of its Keyring without trying each;
// it reveals nothing of the key. Because the mesh name is in the salt, one
// key used for two meshes gives two unrelated sets of sub-keys.
//
// # Passphrases
//
// FromPassphrase stretches a passphrase with Argon2id. Anyone who captures
// one beacon of the mesh can test guesses of the passphrase offline, as
// fast as their hardware computes Argon2id: a passphrase a person can
// remember is weak against that. Prefer Generate.
package meshkey

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Size is the length of a key in bytes.
const Size = 32

// Key is a mesh key: 32 secret bytes. The zero Key means "no key".
type Key [Size]byte

// ErrKey: text that is not a mesh key (wrong length, characters outside the
// base32 alphabet, or the all-zero key).
var ErrKey = errors.New("meshkey: not a mesh key")

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// Generate reads a new key from rand (crypto/rand.Reader in programs; a
// fixed source in tests only).
func Generate(rand io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return Key{}, fmt.Errorf("meshkey: generate: %w", err)
	}
	if k.IsZero() {
		return Key{}, fmt.Errorf("meshkey: generate: the random source gave zeros")
	}
	return k, nil
}

// IsZero reports whether k is the zero Key, which stands for no key.
func (k Key) IsZero() bool { return k == Key{} }

// String returns the key as 52 characters of unpadded base32 (RFC 4648),
// upper case, in groups of four joined by dashes.
func (k Key) String() string {
	s := enc.EncodeToString(k[:])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// Parse reads a key written by String. It ignores case, dashes, spaces,
// tabs and line ends, and refuses anything else that is not base32, any
// length but 32 bytes, and the all-zero key.
func Parse(text string) (Key, error) {
	clean := strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t', '\r', '\n':
			return -1
		}
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, text)
	raw, err := enc.DecodeString(clean)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if len(raw) != Size {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(raw), Size)
	}
	k := Key(raw)
	if k.IsZero() {
		return Key{}, fmt.Errorf("%w: the all-zero key", ErrKey)
	}
	return k, nil
}

// Argon2id parameters of FromPassphrase, part of the protocol: every node
// must stretch the same way. They follow RFC 9106's second recommended
// option (64 MiB, 3 passes, 4 lanes); one stretch takes about 0.1-0.3 s.
const (
	PassphraseTime    = 3
	PassphraseMemory  = 64 * 1024 // KiB
	PassphraseThreads = 4
)

// FromPassphrase derives a key from a passphrase with Argon2id, salted with
// "lanmesh v1 passphrase" and the mesh name, so that every node of the mesh
// that is given the same passphrase gets the same key.
//
// Warning: one captured beacon lets anyone test guesses offline; a weak
// passphrase falls quickly. Use Generate where you can.
func FromPassphrase(passphrase, mesh string) Key {
	salt := append([]byte("lanmesh v1 passphrase"), mesh...)
	return Key(argon2.IDKey([]byte(passphrase), salt, PassphraseTime, PassphraseMemory, PassphraseThreads, Size))
}

// ID is a key's public id for one mesh name: it tells a receiver which key
// a peer uses, without revealing the key.
type ID [8]byte

// String returns the id in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Derived are the sub-keys of one key for one mesh name.
type Derived struct {
	PSK       [32]byte // the Noise pre-shared key of links
	BeaconMAC [32]byte // the HMAC-SHA256 key of beacons
	ID        ID       // the public key id
}

// Derivation labels; see the package documentation.
const (
	saltLabel = "lanmesh v1"
	infoPSK   = "lanmesh psk"
	infoMAC   = "lanmesh beacon mac"
	infoID    = "lanmesh key id"
)

// Derive returns the sub-keys of k for the mesh named mesh.
func (k Key) Derive(mesh string) Derived {
	salt := append([]byte(saltLabel), mesh...)
	prk, err := hkdf.Extract(sha256.New, k[:], salt)
	if err != nil {
		panic(err) // HMAC-SHA256 takes any key
	}
	var d Derived
	expand := func(dst []byte, info string) {
		b, err := hkdf.Expand(sha256.New, prk, info, len(dst))
		if err != nil {
			panic(err) // lengths are far under the limit
		}
		copy(dst, b)
	}
	expand(d.PSK[:], infoPSK)
	expand(d.BeaconMAC[:], infoMAC)
	expand(d.ID[:], infoID)
	return d
}

// Keyring is the keys a node accepts: Primary, which it uses for the links
// it dials and the beacons it sends, and Accepted, further keys it takes
// from peers (during a change of key, every node accepts the new key
// before any makes it primary). The zero Keyring means an unkeyed node.
type Keyring struct {
	Primary  Key
	Accepted []Key
}

// Keyed reports whether the ring has a key at all.
func (r Keyring) Keyed() bool { return !r.Primary.IsZero() }

// Validate checks that an unkeyed ring has no accepted keys and that no
// accepted key is zero.
func (r Keyring) Validate() error {
	if !r.Keyed() && len(r.Accepted) > 0 {
		return fmt.Errorf("%w: accepted keys without a primary key", ErrKey)
	}
	for i, k := range r.Accepted {
		if k.IsZero() {
			return fmt.Errorf("%w: accepted key %d is zero", ErrKey, i)
		}
	}
	return nil
}

// Clone returns a copy that shares no memory with r.
func (r Keyring) Clone() Keyring {
	return Keyring{Primary: r.Primary, Accepted: slices.Clone(r.Accepted)}
}

// Set is a Keyring derived for one mesh name, ready for look-ups by id.
// The first entry is the primary key's. A nil *Set is an unkeyed one.
type Set struct {
	Entries []Derived
}

// Derive derives every key of the ring for mesh; it returns nil for an
// unkeyed ring. Keys given twice appear once.
func (r Keyring) Derive(mesh string) *Set {
	if !r.Keyed() {
		return nil
	}
	s := &Set{}
	for _, k := range append([]Key{r.Primary}, r.Accepted...) {
		d := k.Derive(mesh)
		if _, ok := s.Lookup(d.ID); !ok {
			s.Entries = append(s.Entries, d)
		}
	}
	return s
}

// Primary returns the primary key's sub-keys.
func (s *Set) Primary() Derived { return s.Entries[0] }

// Lookup returns the sub-keys with the given id.
func (s *Set) Lookup(id ID) (Derived, bool) {
	if s == nil {
		return Derived{}, false
	}
	for _, d := range s.Entries {
		if d.ID == id {
			return d, true
		}
	}
	return Derived{}, false
}

// IDs returns the ids of the set, the primary's first.
func (s *Set) IDs() []ID {
	if s == nil {
		return nil
	}
	ids := make([]ID, len(s.Entries))
	for i, d := range s.Entries {
		ids[i] = d.ID
	}
	return ids
}
