package hub

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

// The hub's wire format (SPEC.md section 12): every NATS message the bridge
// publishes is one envelope, a fixed header and a body, the body sealed
// under a mesh key.

// version is the envelope version this package writes and reads.
const version = 1

// kind says what an envelope carries; an append-only list.
type kind uint8

const (
	kindMessage kind = 1  // a message (mesh.RelayMessage)
	kindRequest kind = 2  // a request
	kindReply   kind = 3  // a reply
	kindRefuse  kind = 4  // a refusal; the frame is the reason
	kindMember  kind = 16 // a member's heartbeat, to its own site
	kindRoster  kind = 17 // a gateway's roster of its site, to all
	kindBye     kind = 18 // a bridge leaving, to its site and to all
)

func (k kind) data() bool { return k >= kindMessage && k <= kindRefuse }

// flagSealed marks a sealed body.
const flagSealed = 1

// headerSize is the envelope header's size: version 1, kind 1, flags 1,
// reserved 1, key id 8, sender 16, session 16, start 8, sequence 8.
const headerSize = 60

// overhead is the Poly1305 tag of a sealed body.
const overhead = chacha20poly1305.Overhead

// Limits on what an envelope may hold.
const (
	maxText       = 255 // a site or node name, in bytes (one length byte)
	maxRosterSize = 256 // entries in one roster
)

// Errors of parsing, counted by the bridge as bad input.
var (
	errShort    = errors.New("hub: envelope too short")
	errVersion  = errors.New("hub: unknown envelope version")
	errKind     = errors.New("hub: unknown envelope kind")
	errTooLarge = errors.New("hub: envelope too large")
	errText     = errors.New("hub: bad text field")
	errBody     = errors.New("hub: malformed body")
	errUnsealed = errors.New("hub: envelope not sealed under a mesh key")
	errSealed   = errors.New("hub: sealed envelope and no mesh key")
	errKeyID    = errors.New("hub: envelope sealed with an unknown key")
	errOpen     = errors.New("hub: envelope did not open")
)

// header is an envelope's fixed part.
type header struct {
	kind    kind
	sealed  bool
	keyID   meshkey.ID
	sender  uuid.UUID // the sending node's id
	session uuid.UUID // the sending bridge's session (random per Join)
	start   int64     // when that session began, Unix nanoseconds
	seq     uint64    // per session, from 1, one more per envelope
}

func (h *header) append(dst []byte) []byte {
	var flags byte
	if h.sealed {
		flags = flagSealed
	}
	dst = append(dst, version, byte(h.kind), flags, 0)
	dst = append(dst, h.keyID[:]...)
	dst = append(dst, h.sender[:]...)
	dst = append(dst, h.session[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.start))
	return binary.BigEndian.AppendUint64(dst, h.seq)
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) > MaxEnvelope {
		return h, errTooLarge
	}
	if len(b) < headerSize {
		return h, errShort
	}
	if b[0] != version {
		return h, fmt.Errorf("%w: %d", errVersion, b[0])
	}
	h.kind = kind(b[1])
	switch {
	case h.kind.data(), h.kind == kindMember, h.kind == kindRoster, h.kind == kindBye:
	default:
		return h, fmt.Errorf("%w: %d", errKind, b[1])
	}
	if b[2]&^flagSealed != 0 || b[3] != 0 {
		return h, fmt.Errorf("%w: flags %#x %#x", errBody, b[2], b[3])
	}
	h.sealed = b[2]&flagSealed != 0
	copy(h.keyID[:], b[4:12])
	copy(h.sender[:], b[12:28])
	copy(h.session[:], b[28:44])
	h.start = int64(binary.BigEndian.Uint64(b[44:52]))
	h.seq = binary.BigEndian.Uint64(b[52:60])
	if h.sender == uuid.Nil || h.seq == 0 {
		return h, fmt.Errorf("%w: no sender or sequence", errBody)
	}
	return h, nil
}

// nonce is the XChaCha20-Poly1305 nonce of an envelope: its session and
// sequence, unique per key as long as sessions are random and sequences
// never repeat within one.
func (h *header) nonce() []byte {
	n := make([]byte, 0, chacha20poly1305.NonceSizeX)
	n = append(n, h.session[:]...)
	return binary.BigEndian.AppendUint64(n, h.seq)
}

// sealKey is one mesh key's hub key.
type sealKey struct {
	id   meshkey.ID
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// Derivation labels of the hub key (SPEC.md section 12).
const (
	sealSalt = "lanmesh hub v1"
	sealInfo = "lanmesh hub seal"
)

// deriveKeys derives the hub keys of a mesh key set (nil: unkeyed), the
// primary's first.
func deriveKeys(s *meshkey.Set) []sealKey {
	if s == nil {
		return nil
	}
	keys := make([]sealKey, 0, len(s.Entries))
	for _, d := range s.Entries {
		var k [chacha20poly1305.KeySize]byte
		if _, err := io.ReadFull(hkdf.New(sha256.New, d.PSK[:], []byte(sealSalt), []byte(sealInfo)), k[:]); err != nil {
			panic(err) // far under HKDF's limit
		}
		a, err := chacha20poly1305.NewX(k[:])
		if err != nil {
			panic(err) // the key has the right size
		}
		keys = append(keys, sealKey{id: d.ID, aead: a})
	}
	return keys
}

// seal appends the envelope of h and body to dst, sealed with keys[0] if
// there are keys. The subject is authenticated with it, so that an envelope
// cannot be moved to another subject (another addressee).
func seal(dst []byte, h header, subject string, body []byte, keys []sealKey) []byte {
	if len(keys) == 0 {
		h.sealed, h.keyID = false, meshkey.ID{}
		dst = h.append(dst)
		return append(dst, body...)
	}
	h.sealed, h.keyID = true, keys[0].id
	start := len(dst)
	dst = h.append(dst)
	aad := make([]byte, 0, headerSize+len(subject))
	aad = append(append(aad, dst[start:]...), subject...)
	return keys[0].aead.Seal(dst, h.nonce(), body, aad)
}

// open parses an envelope and returns its header and body, opened with the
// key it names. Under keys, an unsealed envelope is refused; without, a
// sealed one is.
func open(b []byte, subject string, keys []sealKey) (header, []byte, error) {
	h, err := parseHeader(b)
	if err != nil {
		return h, nil, err
	}
	body := b[headerSize:]
	switch {
	case len(keys) == 0 && h.sealed:
		return h, nil, errSealed
	case len(keys) == 0:
		return h, body, nil
	case !h.sealed:
		return h, nil, errUnsealed
	}
	var k *sealKey
	for i := range keys {
		if keys[i].id == h.keyID {
			k = &keys[i]
			break
		}
	}
	if k == nil {
		return h, nil, errKeyID
	}
	if len(body) < overhead {
		return h, nil, errOpen
	}
	aad := make([]byte, 0, headerSize+len(subject))
	aad = append(append(aad, b[:headerSize]...), subject...)
	plain, err := k.aead.Open(nil, h.nonce(), body, aad)
	if err != nil {
		return h, nil, errOpen
	}
	return h, plain, nil
}

// appendText appends a length byte and s (at most maxText bytes).
func appendText(dst []byte, s string) []byte {
	if len(s) > maxText {
		s = s[:maxText]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
	}
	return append(append(dst, byte(len(s))), s...)
}

// readText reads what appendText wrote; it must be valid UTF-8.
func readText(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, errText
	}
	s := b[1 : 1+int(b[0])]
	if !utf8.Valid(s) {
		return "", nil, errText
	}
	return string(s), b[1+int(b[0]):], nil
}

// dataBody is the body of a message, request, reply or refusal: the
// request id, the sender's site and name (so that a message is also news
// of its sender), and the frame in the mesh's codec.
type dataBody struct {
	reqID uint32
	site  string
	name  string
	frame []byte
}

func (d *dataBody) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, d.reqID)
	dst = appendText(dst, d.site)
	dst = appendText(dst, d.name)
	return append(dst, d.frame...)
}

func parseData(b []byte) (dataBody, error) {
	var d dataBody
	if len(b) < 4 {
		return d, errBody
	}
	d.reqID = binary.BigEndian.Uint32(b)
	var err error
	if d.site, b, err = readText(b[4:]); err != nil {
		return d, err
	}
	if d.name, b, err = readText(b); err != nil {
		return d, err
	}
	if d.site == "" {
		return d, fmt.Errorf("%w: no site", errBody)
	}
	d.frame = b
	return d, nil
}

// memberBody is the body of a member heartbeat and of a bye: the sender's
// site and name.
type memberBody struct {
	site, name string
}

func (m *memberBody) append(dst []byte) []byte {
	return appendText(appendText(dst, m.site), m.name)
}

func parseMember(b []byte) (memberBody, error) {
	var m memberBody
	var err error
	if m.site, b, err = readText(b); err != nil {
		return m, err
	}
	if m.name, b, err = readText(b); err != nil {
		return m, err
	}
	if m.site == "" || len(b) != 0 {
		return m, errBody
	}
	return m, nil
}

// rosterEntry is one node of a site's roster.
type rosterEntry struct {
	id, session uuid.UUID
	name        string
}

// rosterBody is the body of a roster: the site, and its members.
type rosterBody struct {
	site    string
	entries []rosterEntry
}

func (r *rosterBody) append(dst []byte) []byte {
	dst = appendText(dst, r.site)
	n := min(len(r.entries), maxRosterSize)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	for _, e := range r.entries[:n] {
		dst = append(dst, e.id[:]...)
		dst = append(dst, e.session[:]...)
		dst = appendText(dst, e.name)
	}
	return dst
}

func parseRoster(b []byte) (rosterBody, error) {
	var r rosterBody
	var err error
	if r.site, b, err = readText(b); err != nil {
		return r, err
	}
	if r.site == "" || len(b) < 2 {
		return r, errBody
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > maxRosterSize {
		return r, fmt.Errorf("%w: %d entries", errTooLarge, n)
	}
	r.entries = make([]rosterEntry, 0, n)
	for range n {
		if len(b) < 32 {
			return r, errBody
		}
		var e rosterEntry
		copy(e.id[:], b[:16])
		copy(e.session[:], b[16:32])
		if e.name, b, err = readText(b[32:]); err != nil {
			return r, err
		}
		if e.id == uuid.Nil {
			return r, errBody
		}
		r.entries = append(r.entries, e)
	}
	if len(b) != 0 {
		return r, errBody
	}
	return r, nil
}

// token is a subject token for a name: NATS subjects cannot hold every
// text (dots, spaces, wildcards), and the hub need not learn names.
func token(label, name string) string {
	h := sha256.Sum256([]byte(label + "\x00" + name))
	return hex.EncodeToString(h[:8])
}

// The subjects, under lanmesh.<mesh token>.
func subjectRoster(mesh string) string { return "lanmesh." + token("mesh", mesh) + ".roster" }
func subjectMembers(mesh, site string) string {
	return "lanmesh." + token("mesh", mesh) + ".site." + token("site", site)
}
func subjectNode(mesh string, id uuid.UUID) string {
	return "lanmesh." + token("mesh", mesh) + ".node." + hex.EncodeToString(id[:])
}
