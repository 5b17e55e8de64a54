// Package wire is the hub's wire format (SPEC.md section 13): the
// envelope every NATS message of package hub is, its bodies, its sealing
// under a mesh key, the subjects, and the replay window. It knows no NATS
// and no sockets, so that it can be tested and fuzzed alone.
package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/lanmesh/lanmesh/meshkey"
)

// MaxEnvelope is the largest envelope, in bytes.
const MaxEnvelope = 64 << 10

// Version is the envelope version this package writes and reads.
const Version = 1

// Kind says what an envelope carries; an append-only list.
type Kind uint8

const (
	KindMessage Kind = 1  // a message (mesh.RelayMessage)
	KindRequest Kind = 2  // a request
	KindReply   Kind = 3  // a reply
	KindRefuse  Kind = 4  // a refusal; the frame is the reason
	KindMember  Kind = 16 // a member's heartbeat, to its own site
	KindRoster  Kind = 17 // a gateway's roster of its site, to all
	KindBye     Kind = 18 // a bridge leaving, to its site and to all
)

func (k Kind) IsData() bool { return k >= KindMessage && k <= KindRefuse }

// flagSealed marks a sealed body.
const flagSealed = 1

// HeaderSize is the envelope header's size: version 1, kind 1, flags 1,
// reserved 1, key id 8, sender 16, session 16, start 8, sequence 8.
const HeaderSize = 60

// Overhead is the Poly1305 tag of a sealed body.
const Overhead = chacha20poly1305.Overhead

// Limits on what an envelope may hold.
const (
	MaxText       = 255 // a site or node name, in bytes (one length byte)
	MaxRosterSize = 256 // entries in one roster
)

// Errors of parsing, counted by the bridge as bad input.
var (
	ErrShort    = errors.New("hub: envelope too short")
	ErrVersion  = errors.New("hub: unknown envelope version")
	ErrKind     = errors.New("hub: unknown envelope kind")
	ErrTooLarge = errors.New("hub: envelope too large")
	ErrText     = errors.New("hub: bad text field")
	ErrBody     = errors.New("hub: malformed body")
	ErrUnsealed = errors.New("hub: envelope not sealed under a mesh key")
	ErrSealed   = errors.New("hub: sealed envelope and no mesh key")
	ErrKeyID    = errors.New("hub: envelope sealed with an unknown key")
	ErrOpen     = errors.New("hub: envelope did not open")
)

// Header is an envelope's fixed part.
type Header struct {
	Kind    Kind
	Sealed  bool
	KeyID   meshkey.ID
	Sender  uuid.UUID // the sending node's id
	Session uuid.UUID // the sending bridge's session (random per Join)
	Start   int64     // when that session began, Unix nanoseconds
	Seq     uint64    // per session, from 1, one more per envelope
}

func (h *Header) Append(dst []byte) []byte {
	var flags byte
	if h.Sealed {
		flags = flagSealed
	}
	dst = append(dst, Version, byte(h.Kind), flags, 0)
	dst = append(dst, h.KeyID[:]...)
	dst = append(dst, h.Sender[:]...)
	dst = append(dst, h.Session[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Start))
	return binary.BigEndian.AppendUint64(dst, h.Seq)
}

func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) > MaxEnvelope {
		return h, ErrTooLarge
	}
	if len(b) < HeaderSize {
		return h, ErrShort
	}
	if b[0] != Version {
		return h, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	h.Kind = Kind(b[1])
	switch {
	case h.Kind.IsData(), h.Kind == KindMember, h.Kind == KindRoster, h.Kind == KindBye:
	default:
		return h, fmt.Errorf("%w: %d", ErrKind, b[1])
	}
	if b[2]&^flagSealed != 0 || b[3] != 0 {
		return h, fmt.Errorf("%w: flags %#x %#x", ErrBody, b[2], b[3])
	}
	h.Sealed = b[2]&flagSealed != 0
	copy(h.KeyID[:], b[4:12])
	copy(h.Sender[:], b[12:28])
	copy(h.Session[:], b[28:44])
	h.Start = int64(binary.BigEndian.Uint64(b[44:52]))
	h.Seq = binary.BigEndian.Uint64(b[52:60])
	if h.Sender == uuid.Nil || h.Seq == 0 {
		return h, fmt.Errorf("%w: no sender or sequence", ErrBody)
	}
	return h, nil
}

// nonce is the XChaCha20-Poly1305 nonce of an envelope: its session and
// sequence, unique per key as long as sessions are random and sequences
// never repeat within one.
func (h *Header) nonce() []byte {
	n := make([]byte, 0, chacha20poly1305.NonceSizeX)
	n = append(n, h.Session[:]...)
	return binary.BigEndian.AppendUint64(n, h.Seq)
}

// Key is one mesh key's hub key.
type Key struct {
	ID   meshkey.ID
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// Derivation labels of the hub key (SPEC.md section 13).
const (
	sealSalt = "lanmesh hub v1"
	sealInfo = "lanmesh hub seal"
)

// DeriveKeys derives the hub keys of a mesh key set (nil: unkeyed), the
// primary's first.
func DeriveKeys(s *meshkey.Set) []Key {
	if s == nil {
		return nil
	}
	keys := make([]Key, 0, len(s.Entries))
	for _, d := range s.Entries {
		var k [chacha20poly1305.KeySize]byte
		if _, err := io.ReadFull(hkdf.New(sha256.New, d.PSK[:], []byte(sealSalt), []byte(sealInfo)), k[:]); err != nil {
			panic(err) // far under HKDF's limit
		}
		a, err := chacha20poly1305.NewX(k[:])
		if err != nil {
			panic(err) // the key has the right size
		}
		keys = append(keys, Key{ID: d.ID, aead: a})
	}
	return keys
}

// Seal appends the envelope of h and body to dst, sealed with keys[0] if
// there are keys. The subject is authenticated with it, so that an envelope
// cannot be moved to another subject (another addressee).
func Seal(dst []byte, h Header, subject string, body []byte, keys []Key) []byte {
	if len(keys) == 0 {
		h.Sealed, h.KeyID = false, meshkey.ID{}
		dst = h.Append(dst)
		return append(dst, body...)
	}
	h.Sealed, h.KeyID = true, keys[0].ID
	at := len(dst)
	dst = h.Append(dst)
	aad := make([]byte, 0, HeaderSize+len(subject))
	aad = append(append(aad, dst[at:]...), subject...)
	return keys[0].aead.Seal(dst, h.nonce(), body, aad)
}

// Open parses an envelope and returns its header and body, opened with the
// key it names. Under keys, an unsealed envelope is refused; without, a
// sealed one is.
func Open(b []byte, subject string, keys []Key) (Header, []byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	body := b[HeaderSize:]
	switch {
	case len(keys) == 0 && h.Sealed:
		return h, nil, ErrSealed
	case len(keys) == 0:
		return h, body, nil
	case !h.Sealed:
		return h, nil, ErrUnsealed
	}
	var k *Key
	for i := range keys {
		if keys[i].ID == h.KeyID {
			k = &keys[i]
			break
		}
	}
	if k == nil {
		return h, nil, ErrKeyID
	}
	if len(body) < Overhead {
		return h, nil, ErrOpen
	}
	aad := make([]byte, 0, HeaderSize+len(subject))
	aad = append(append(aad, b[:HeaderSize]...), subject...)
	plain, err := k.aead.Open(nil, h.nonce(), body, aad)
	if err != nil {
		return h, nil, ErrOpen
	}
	return h, plain, nil
}

// AppendText appends a length byte and s (at most MaxText bytes).
func AppendText(dst []byte, s string) []byte {
	if len(s) > MaxText {
		s = s[:MaxText]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
	}
	return append(append(dst, byte(len(s))), s...)
}

// ReadText reads what AppendText wrote; it must be valid UTF-8.
func ReadText(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, ErrText
	}
	s := b[1 : 1+int(b[0])]
	if !utf8.Valid(s) {
		return "", nil, ErrText
	}
	return string(s), b[1+int(b[0]):], nil
}

// DataBody is the body of a message, request, reply or refusal: the
// request id, the sender's site and name (so that a message is also news
// of its sender), and the frame in the mesh's codec.
type DataBody struct {
	ReqID uint32
	Site  string
	Name  string
	Frame []byte
}

func (d *DataBody) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, d.ReqID)
	dst = AppendText(dst, d.Site)
	dst = AppendText(dst, d.Name)
	return append(dst, d.Frame...)
}

func ParseData(b []byte) (DataBody, error) {
	var d DataBody
	if len(b) < 4 {
		return d, ErrBody
	}
	d.ReqID = binary.BigEndian.Uint32(b)
	var err error
	if d.Site, b, err = ReadText(b[4:]); err != nil {
		return d, err
	}
	if d.Name, b, err = ReadText(b); err != nil {
		return d, err
	}
	if d.Site == "" {
		return d, fmt.Errorf("%w: no site", ErrBody)
	}
	d.Frame = b
	return d, nil
}

// MemberBody is the body of a member heartbeat and of a bye: the sender's
// site and name.
type MemberBody struct {
	Site, Name string
}

func (m *MemberBody) Append(dst []byte) []byte {
	return AppendText(AppendText(dst, m.Site), m.Name)
}

func ParseMember(b []byte) (MemberBody, error) {
	var m MemberBody
	var err error
	if m.Site, b, err = ReadText(b); err != nil {
		return m, err
	}
	if m.Name, b, err = ReadText(b); err != nil {
		return m, err
	}
	if m.Site == "" || len(b) != 0 {
		return m, ErrBody
	}
	return m, nil
}

// RosterEntry is one node of a site's roster.
type RosterEntry struct {
	ID, Session uuid.UUID
	Name        string
}

// RosterBody is the body of a roster: the site, and its members.
type RosterBody struct {
	Site    string
	Entries []RosterEntry
}

func (r *RosterBody) Append(dst []byte) []byte {
	dst = AppendText(dst, r.Site)
	n := min(len(r.Entries), MaxRosterSize)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, e := range r.Entries[:n] {
		dst = append(dst, e.ID[:]...)
		dst = append(dst, e.Session[:]...)
		dst = AppendText(dst, e.Name)
	}
	return dst
}

func ParseRoster(b []byte) (RosterBody, error) {
	var r RosterBody
	var err error
	if r.Site, b, err = ReadText(b); err != nil {
		return r, err
	}
	if r.Site == "" || len(b) < 2 {
		return r, ErrBody
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > MaxRosterSize {
		return r, fmt.Errorf("%w: %d entries", ErrTooLarge, n)
	}
	r.Entries = make([]RosterEntry, 0, n)
	for range n {
		if len(b) < 32 {
			return r, ErrBody
		}
		var e RosterEntry
		copy(e.ID[:], b[:16])
		copy(e.Session[:], b[16:32])
		if e.Name, b, err = ReadText(b[32:]); err != nil {
			return r, err
		}
		if e.ID == uuid.Nil {
			return r, ErrBody
		}
		r.Entries = append(r.Entries, e)
	}
	if len(b) != 0 {
		return r, ErrBody
	}
	return r, nil
}

// token is a subject token for a name: NATS subjects cannot hold every
// text (dots, spaces, wildcards), and the hub need not learn names.
func token(label, name string) string {
	h := sha256.Sum256([]byte(label + "\x00" + name))
	return hex.EncodeToString(h[:8])
}

// The subjects, under lanmesh.<mesh token>: the rosters, a site's
// heartbeats, a node's messages.
func SubjectRoster(mesh string) string { return "lanmesh." + token("mesh", mesh) + ".roster" }
func SubjectSite(mesh, Site string) string {
	return "lanmesh." + token("mesh", mesh) + ".site." + token("site", Site)
}
func SubjectNode(mesh string, ID uuid.UUID) string {
	return "lanmesh." + token("mesh", mesh) + ".node." + hex.EncodeToString(ID[:])
}
