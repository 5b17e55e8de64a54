package lane

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
)

// Labels of the HKDF expansions that make the two direction keys.
const (
	labelInitiatorToResponder = "lanmesh lane v1 initiator to responder"
	labelResponderToInitiator = "lanmesh lane v1 responder to initiator"
)

// NewToken returns a random, non-zero token.
func NewToken() (Token, error) {
	var t Token
	for t == (Token{}) {
		if _, err := rand.Read(t[:]); err != nil {
			return t, fmt.Errorf("lane: token: %w", err)
		}
	}
	return t, nil
}

// Session is what the link handshake agrees for one lane, as seen from one
// side.
type Session struct {
	// Local is this side's token: datagrams to this side carry it.
	Local Token
	// Remote is the peer's token: datagrams this side sends carry it.
	Remote Token
	// Peer, when valid, is the only address datagrams are accepted from
	// (the peer's link address and the lane port it announced). Zero
	// accepts any source; the token and, keyed, the seal still apply.
	Peer netip.AddrPort
	// Keyed lanes seal every datagram with SendKey and open with RecvKey.
	Keyed   bool
	SendKey [32]byte
	RecvKey [32]byte
}

// NewSession returns the session of one side of a link. initiator says
// whether this side dialled the link. secret is what the keyed handshake
// exports for the lane (SPEC.md section 11.4), or nil for an unkeyed lane.
// Keys are derived from the secret and both tokens, so they differ for every
// link and every restart even if a secret were ever repeated.
func NewSession(local, remote Token, initiator bool, secret []byte) (Session, error) {
	s := Session{Local: local, Remote: remote}
	if local == remote {
		return s, fmt.Errorf("%w: both sides chose the same token", ErrConfig)
	}
	if secret == nil {
		return s, nil
	}
	iTok, rTok := local, remote
	if !initiator {
		iTok, rTok = remote, local
	}
	i2r, r2i, err := DeriveKeys(secret, iTok, rTok)
	if err != nil {
		return s, err
	}
	s.Keyed = true
	if initiator {
		s.SendKey, s.RecvKey = i2r, r2i
	} else {
		s.SendKey, s.RecvKey = r2i, i2r
	}
	return s, nil
}

// DeriveKeys derives the lane's two direction keys with HKDF-SHA256 from the
// secret of the keyed handshake, salted with the session id (the
// initiator's token, then the responder's).
func DeriveKeys(secret []byte, initiator, responder Token) (i2r, r2i [32]byte, err error) {
	if len(secret) < 32 {
		return i2r, r2i, fmt.Errorf("%w: a lane secret of %d bytes (want at least 32)", ErrConfig, len(secret))
	}
	salt := make([]byte, 0, 16)
	salt = append(append(salt, initiator[:]...), responder[:]...)
	prk, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return i2r, r2i, err
	}
	a, err := hkdf.Expand(sha256.New, prk, labelInitiatorToResponder, 32)
	if err != nil {
		return i2r, r2i, err
	}
	b, err := hkdf.Expand(sha256.New, prk, labelResponderToInitiator, 32)
	if err != nil {
		return i2r, r2i, err
	}
	copy(i2r[:], a)
	copy(r2i[:], b)
	return i2r, r2i, nil
}
