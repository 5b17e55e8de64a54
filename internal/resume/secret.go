package resume

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
)

// Labels, each used once, so that no two derivations can give the same
// bytes (SPEC.md section 12.5).
const (
	labelSalt    = "lanmesh resume v1"
	labelSecret  = "lanmesh resume secret"
	labelID      = "lanmesh resume v1 session id"
	labelMAC     = "lanmesh resume v1 mac key"
	labelBinding = "lanmesh resume v1 binding"
	labelMessage = "lanmesh resume v1 message"
)

// ID is a node or instance id: a UUID's 16 bytes.
type ID [16]byte

// Pair names the two ends of a session, as seen from one of them. A
// session belongs to one instance of each node: a restart is a new session.
type Pair struct {
	LocalNode, LocalInstance   ID
	RemoteNode, RemoteInstance ID
}

// ordered returns the ids with the lower node id first: both ends derive
// the same bytes.
func (p Pair) ordered() []byte {
	a := append(p.LocalNode[:], p.LocalInstance[:]...)
	b := append(p.RemoteNode[:], p.RemoteInstance[:]...)
	if bytes.Compare(p.LocalNode[:], p.RemoteNode[:]) > 0 {
		a, b = b, a
	}
	return append(a, b...)
}

// Secret is a session's resume secret, which both ends hold from the link
// that began the session and nobody else does.
type Secret [32]byte

// SessionID names a session: the first 8 bytes of HMAC(secret, label). It
// tells two ends that hold different sessions apart from a forgery.
type SessionID [8]byte

// Share is an unkeyed link's X25519 public key, sent in its Accept.
type Share [32]byte

// NewShare makes a fresh X25519 key for one unkeyed handshake: the private
// half stays with the link, the Share goes in the Accept. rand nil means
// crypto/rand.
func NewShare(rand io.Reader) (*ecdh.PrivateKey, Share, error) {
	var priv *ecdh.PrivateKey
	var err error
	if rand == nil {
		priv, err = ecdh.X25519().GenerateKey(cryptorand.Reader)
	} else {
		// GenerateKey ignores a reader other than crypto/rand's in recent
		// Go; tests need fixed keys.
		var k [32]byte
		if _, err = io.ReadFull(rand, k[:]); err == nil {
			priv, err = ecdh.X25519().NewPrivateKey(k[:])
		}
	}
	if err != nil {
		return nil, Share{}, fmt.Errorf("resume: share: %w", err)
	}
	var s Share
	copy(s[:], priv.PublicKey().Bytes())
	return priv, s, nil
}

// KeyedSecret derives the session secret from the keyed handshake of the
// link that begins the session: i2r and r2i are the two keys of Noise's
// Split (initiator to responder first), which only the two ends hold.
func KeyedSecret(p Pair, i2r, r2i [32]byte) Secret {
	return derive(p, append(i2r[:], r2i[:]...))
}

// UnkeyedSecret derives the session secret of an unkeyed link that begins
// the session, from X25519 of this side's private key and the peer's
// Share: an eavesdropper who saw both Accepts cannot compute it.
func UnkeyedSecret(p Pair, priv *ecdh.PrivateKey, peer Share) (Secret, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return Secret{}, fmt.Errorf("%w: the peer's share: %v", ErrMalformed, err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil { // a low-order point: all-zero output
		return Secret{}, fmt.Errorf("%w: the peer's share: %v", ErrMalformed, err)
	}
	return derive(p, shared), nil
}

func derive(p Pair, ikm []byte) Secret {
	out, err := hkdf.Key(sha256.New, ikm, []byte(labelSalt), labelSecret+string(p.ordered()), 32)
	if err != nil {
		panic(err) // 32 bytes of SHA-256 output are always allowed
	}
	return Secret(out)
}

// ID returns the session's id.
func (s *Secret) ID() SessionID {
	return SessionID(s.hmac(labelID)[:8])
}

func (s *Secret) macKey() []byte { return s.hmac(labelMAC) }

func (s *Secret) hmac(label string) []byte {
	m := hmac.New(sha256.New, s[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Binding is 32 bytes that only this connection has, which both ends know
// once the handshake is over: a resume message is bound to it, so that one
// recorded on another connection does not verify.
type Binding [32]byte

// KeyedBinding is a keyed link's binding: SHA-256 of a label and the Noise
// handshake hash (the channel binding, which covers both ephemeral keys).
func KeyedBinding(channelBinding []byte) Binding {
	h := sha256.New()
	h.Write([]byte(labelBinding))
	h.Write(channelBinding)
	return Binding(h.Sum(nil))
}

// UnkeyedBinding is an unkeyed link's binding: SHA-256 of a label, both
// ends' ids and both Shares (fresh for every connection), the lower node
// id's first.
func UnkeyedBinding(p Pair, local, remote Share) Binding {
	if bytes.Compare(p.LocalNode[:], p.RemoteNode[:]) > 0 {
		local, remote = remote, local
	}
	h := sha256.New()
	h.Write([]byte(labelBinding))
	h.Write(p.ordered())
	h.Write(local[:])
	h.Write(remote[:])
	return Binding(h.Sum(nil))
}
