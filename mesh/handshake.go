package mesh

import (
	"context"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/meshkey"
)

// Handshake wire constants; SPEC.md section 6 describes the bytes.
const (
	// ProtocolVersion is the link protocol version this package speaks.
	protocolVersion = 1
	// SuiteNone is the key-exchange suite of a link without a mesh key.
	suiteNone = 0
	// SuiteNoise is the suite of keyed links:
	// Noise_NNpsk0_25519_ChaChaPoly_SHA256, the only one; there is no
	// negotiation (SPEC.md section 10).
	suiteNoise = 1

	handshakeMagic   = "LNMH"
	handshakeHeader  = 8
	maxHandshakeBody = 1024
	maxString        = 255
	helloFixed       = 16 + 16 + 2 + 1 + 1 // ids, port, suite, flags
)

// Handshake frame kinds, an append-only list.
const (
	kindHello  byte = 1
	kindReject byte = 2
	kindAccept byte = 3
	// A keyed initiator's clear preamble: suite and key id.
	kindPreamble byte = 4
	// A Noise handshake message.
	kindNoise byte = 5
)

// Reject codes, an append-only list. Each names the sentinel the rejected
// side reports; a code this version does not know reads as ErrRejected.
const (
	rejectOther     byte = 0
	rejectMalformed byte = 1
	rejectVersion   byte = 2
	rejectMesh      byte = 3
	rejectCodec     byte = 4
	rejectTimeout   byte = 5
	rejectSuite     byte = 6
	// The sender has a mesh key, the receiver none.
	rejectKeyRequired byte = 7
	// The sender has no mesh key, the receiver has one.
	rejectNoKey byte = 8
	// The sender knows no key of that id, or the handshake failed under it.
	rejectWrongKey byte = 9
)

var rejectSentinels = map[byte]error{
	rejectOther:     ErrRejected,
	rejectMalformed: ErrHandshake,
	rejectVersion:   ErrVersion,
	rejectMesh:      ErrMeshMismatch,
	rejectCodec:     ErrCodecMismatch,
	rejectTimeout:   ErrHandshakeTimeout,
	rejectSuite:     ErrHandshake,

	rejectKeyRequired: ErrKeyRequired,
	rejectNoKey:       ErrUnkeyedPeer,
	rejectWrongKey:    ErrWrongKey,
}

func rejectCode(sentinel error) byte {
	for code, s := range rejectSentinels {
		if s == sentinel && code != rejectSuite {
			return code
		}
	}
	return rejectOther
}

// Hello is what each side of a link announces in its handshake.
type hello struct {
	// NodeID names the node; never the nil UUID.
	NodeID uuid.UUID
	// InstanceID changes each time the node's program starts; never nil.
	InstanceID uuid.UUID
	// Name is the node's name for people, up to 255 bytes of UTF-8.
	Name string
	// Mesh is the mesh's name, 1 to 255 bytes of UTF-8.
	Mesh string
	// Codec names the codec the node speaks after the handshake, 1 to 255
	// bytes of UTF-8.
	Codec string
	// ListenPort is where the node accepts links (0: it does not).
	ListenPort uint16
	// Suite is the key-exchange suite: SuiteNone on an unkeyed link,
	// SuiteNoise in the Hello a keyed handshake carries. SuiteData is its
	// payload: empty under SuiteNone; under SuiteNoise, extension items
	// (SPEC.md section 12.4: a Node's resume offer), or empty.
	Suite     byte
	SuiteData []byte
}

// appendFrame appends h as a complete Hello frame, header included.
func (h hello) appendFrame(dst []byte) ([]byte, error) {
	switch {
	case len(h.Name) > maxString || len(h.Mesh) > maxString || len(h.Codec) > maxString:
		return dst, fmt.Errorf("%w: a name, mesh or codec over %d bytes", ErrHandshake, maxString)
	case len(h.SuiteData) > maxHandshakeBody:
		return dst, fmt.Errorf("%w: suite data of %d bytes", ErrHandshake, len(h.SuiteData))
	case h.Suite == suiteNone && len(h.SuiteData) > 0:
		return dst, fmt.Errorf("%w: suite data without a suite", ErrHandshake)
	}
	start := len(dst)
	dst = appendHeader(dst, kindHello)
	dst = append(dst, h.NodeID[:]...)
	dst = append(dst, h.InstanceID[:]...)
	dst = binary.BigEndian.AppendUint16(dst, h.ListenPort)
	dst = append(dst, h.Suite, 0) // suite, flags
	for _, s := range []string{h.Name, h.Mesh, h.Codec} {
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.SuiteData)))
	dst = append(dst, h.SuiteData...)
	body := len(dst) - start - handshakeHeader
	if body > maxHandshakeBody {
		return dst[:start], fmt.Errorf("%w: hello of %d bytes, at most %d", ErrHandshake, body, maxHandshakeBody)
	}
	binary.BigEndian.PutUint16(dst[start+6:], uint16(body))
	return dst, nil
}

func appendHeader(dst []byte, kind byte) []byte {
	dst = append(dst, handshakeMagic...)
	return append(dst, protocolVersion, kind, 0, 0)
}

// appendReject appends a Reject frame; the reason is cut to 255 bytes at a
// rune boundary.
func appendReject(dst []byte, code byte, reason string) []byte {
	if len(reason) > maxString {
		reason = reason[:maxString]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = appendHeader(dst, kindReject)
	dst[len(dst)-1] = byte(2 + len(reason))
	dst = append(dst, code, byte(len(reason)))
	return append(dst, reason...)
}

func appendAccept(dst []byte) []byte { return appendHeader(dst, kindAccept) }

// appendAcceptBody appends an Accept whose body is ext, extension items
// (SPEC.md section 12.4: the resume offer of an unkeyed link).
func appendAcceptBody(dst, ext []byte) []byte {
	start := len(dst)
	dst = appendHeader(dst, kindAccept)
	binary.BigEndian.PutUint16(dst[start+6:], uint16(len(ext)))
	return append(dst, ext...)
}

// parseHello reads a complete Hello frame, header included, rejecting
// anything it cannot trust: another magic or version, another frame kind,
// lengths that disagree, bytes after the last field, nil ids, reserved flags,
// names that are not UTF-8, an empty mesh or codec.
func parseHello(frame []byte) (hello, error) {
	if len(frame) < handshakeHeader {
		return hello{}, fmt.Errorf("%w: %d bytes, a frame has at least %d", ErrHandshake, len(frame), handshakeHeader)
	}
	kind, n, err := parseHeader(frame[:handshakeHeader])
	if err != nil {
		return hello{}, err
	}
	if kind != kindHello {
		return hello{}, fmt.Errorf("%w: frame kind %d, want hello", ErrHandshake, kind)
	}
	if len(frame) != handshakeHeader+n {
		return hello{}, fmt.Errorf("%w: header says %d body bytes, frame has %d", ErrHandshake, n, len(frame)-handshakeHeader)
	}
	return parseHelloBody(frame[handshakeHeader:])
}

// parseHeader checks a frame header and returns its kind and body length.
func parseHeader(h []byte) (kind byte, n int, err error) {
	if string(h[:4]) != handshakeMagic {
		return 0, 0, fmt.Errorf("%w: no %q magic (got % x): not a lanmesh peer", ErrHandshake, handshakeMagic, h[:4])
	}
	if h[4] != protocolVersion {
		return 0, 0, fmt.Errorf("%w: peer speaks version %d, this node %d", ErrVersion, h[4], protocolVersion)
	}
	n = int(binary.BigEndian.Uint16(h[6:]))
	if n > maxHandshakeBody {
		return 0, 0, fmt.Errorf("%w: body of %d bytes, at most %d", ErrHandshake, n, maxHandshakeBody)
	}
	return h[5], n, nil
}

func parseHelloBody(b []byte) (hello, error) {
	bad := func(what string) (hello, error) { return hello{}, fmt.Errorf("%w: hello: %s", ErrHandshake, what) }
	if len(b) < helloFixed {
		return bad("too short")
	}
	var h hello
	copy(h.NodeID[:], b[0:16])
	copy(h.InstanceID[:], b[16:32])
	h.ListenPort = binary.BigEndian.Uint16(b[32:])
	h.Suite = b[34]
	if b[35] != 0 {
		return bad(fmt.Sprintf("reserved flags 0x%02x", b[35]))
	}
	if h.NodeID == uuid.Nil || h.InstanceID == uuid.Nil {
		return bad("nil node or instance id")
	}
	b = b[helloFixed:]
	var strs [3]string
	for i := range strs {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return bad("string overruns the frame")
		}
		s := b[1 : 1+int(b[0])]
		if !utf8.Valid(s) {
			return bad("string is not UTF-8")
		}
		strs[i] = string(s)
		b = b[1+len(s):]
	}
	h.Name, h.Mesh, h.Codec = strs[0], strs[1], strs[2]
	if h.Mesh == "" || h.Codec == "" {
		return bad("empty mesh or codec")
	}
	if len(b) < 2 || len(b) != 2+int(binary.BigEndian.Uint16(b)) {
		return bad("suite data length disagrees with the frame")
	}
	if len(b) > 2 {
		if h.Suite == suiteNone {
			return bad("suite data without a suite")
		}
		h.SuiteData = append([]byte(nil), b[2:]...)
	}
	return h, nil
}

func parseReject(b []byte) (code byte, reason string, err error) {
	if len(b) < 2 || len(b) != 2+int(b[1]) || !utf8.Valid(b[2:]) {
		return 0, "", fmt.Errorf("%w: malformed reject", ErrHandshake)
	}
	return b[0], string(b[2:]), nil
}

// session is what a handshake yields: the peer's Hello and, on a keyed
// link, the key id it used and the two directions' record ciphers.
type session struct {
	remote hello
	keyed  bool
	keyID  meshkey.ID
	send   *recordCipher
	recv   *recordCipher
	// laneSecret is the keyed lane's secret: the Split's two keys, the
	// initiator-to-responder one first (SPEC.md 11.2). Nil unkeyed.
	laneSecret []byte
	// resume is what the handshake gave for resumable links (SPEC.md
	// section 12); ok is false when either side did not offer it.
	resume hsResume
	// lr is set by the node before the link starts: the link resumes its
	// peer's session (nil: it does not).
	lr *linkResume
	// began is when the handshake began.
	began time.Time
}

// hsResume is a handshake's part of the resume exchange (SPEC.md section
// 12.5): what the link's binding and, if the link begins a session, its
// secret come from.
type hsResume struct {
	ok bool
	// Unkeyed: both sides' X25519 shares.
	priv          *ecdh.PrivateKey
	local, remote resume.Share
	// Keyed: the binding of the Noise handshake hash, and the Split's two
	// keys, the initiator-to-responder one first.
	keyed    bool
	bind     resume.Binding
	i2r, r2i [32]byte
}

// material returns the link's binding, and the function that derives the
// session secret should the link begin a session.
func (r *hsResume) material(p resume.Pair) (resume.Binding, func() (resume.Secret, error)) {
	if r.keyed {
		i2r, r2i := r.i2r, r.r2i
		return r.bind, func() (resume.Secret, error) { return resume.KeyedSecret(p, i2r, r2i), nil }
	}
	priv, share := r.priv, r.remote
	return resume.UnkeyedBinding(p, r.local, r.remote), func() (resume.Secret, error) {
		return resume.UnkeyedSecret(p, priv, share)
	}
}

// hsOptions are a handshake's role and keys.
type hsOptions struct {
	initiator bool
	keys      *meshkey.Set // nil: unkeyed
	// keyIndex picks the key an initiator uses: the prefer'd one if the
	// ring holds it (the key the peer's beacon was signed with), else
	// entry keyIndex modulo the ring's size (0, the primary, at first).
	prefer    meshkey.ID
	hasPrefer bool
	keyIndex  int
	rand      io.Reader // the Noise ephemeral keys' source; nil: crypto/rand
	// resume offers resumable links (SPEC.md section 12); only a Node,
	// which keeps sessions across links, does.
	resume bool
}

func handshake(ctx context.Context, conn net.Conn, local hello, cfg Config, o hsOptions) (session, error) {
	timeout := cfg.Link.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return session{}, closeErr(ErrConnLost, false, err.Error())
	}
	// A cancelled ctx unblocks reads and writes by moving the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	h := &handshaker{conn: conn, ctx: ctx, log: cfg.logger()}
	began := time.Now()
	var s session
	var err error
	switch {
	case o.keys == nil:
		s.remote, s.resume, err = h.run(local, o.resume)
	case o.initiator:
		s, err = h.initiate(local, o)
	default:
		s, err = h.respond(local, o)
	}
	if err != nil {
		h.log.Debug("mesh: handshake failed", "remote", conn.RemoteAddr(), "err", err)
		return session{}, err
	}
	if !stop() {
		return session{}, fmt.Errorf("mesh: handshake: %w", ctx.Err())
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return session{}, closeErr(ErrConnLost, false, err.Error())
	}
	s.began = began
	return s, nil
}

type handshaker struct {
	conn net.Conn
	ctx  context.Context
	log  *slog.Logger
	buf  [handshakeHeader + maxHandshakeBody]byte
}

func (h *handshaker) run(local hello, offer bool) (hello, hsResume, error) {
	var rs hsResume
	remote, err := h.runHello(local)
	if err != nil {
		return hello{}, rs, err
	}
	var ext []byte
	if offer {
		priv, share, err := resume.NewShare(nil)
		if err != nil {
			return hello{}, rs, closeErr(ErrHandshake, false, err.Error())
		}
		rs.priv, rs.local = priv, share
		ext = resume.AppendOffer(nil, resume.Offer{Version: resume.Version, Share: share, HasShare: true})
	}
	if _, err := h.conn.Write(appendAcceptBody(h.buf[:0], ext)); err != nil {
		return hello{}, rs, h.ioErr(err)
	}
	kind, body, err := h.read()
	if err != nil {
		return hello{}, rs, err
	}
	if kind != kindAccept {
		return hello{}, rs, h.reject(ErrHandshake, fmt.Sprintf("expected accept, got frame kind %d", kind))
	}
	if offer {
		// An older peer sends an empty body: it does not speak resume.
		o, found, err := resume.ParseOffer(body, false)
		if err != nil {
			return hello{}, rs, h.reject(ErrHandshake, err.Error())
		}
		rs.ok, rs.remote = found, o.Share
	}
	return remote, rs, nil
}

// runHello is the exchange of Hellos of an unkeyed handshake.
func (h *handshaker) runHello(local hello) (hello, error) {
	frame, err := local.appendFrame(h.buf[:0])
	if err != nil {
		return hello{}, closeErr(ErrHandshake, false, err.Error())
	}
	if _, err := h.conn.Write(frame); err != nil {
		return hello{}, h.ioErr(err)
	}
	kind, body, err := h.read()
	if err != nil {
		return hello{}, err
	}
	if kind == kindPreamble {
		return hello{}, h.rejectCode(rejectNoKey, ErrKeyRequired, "this node has no mesh key")
	}
	if kind != kindHello {
		return hello{}, h.reject(ErrHandshake, fmt.Sprintf("expected a hello, got frame kind %d", kind))
	}
	remote, err := parseHelloBody(body)
	switch {
	case err != nil:
		return hello{}, h.reject(ErrHandshake, err.Error())
	case remote.Mesh != local.Mesh:
		return hello{}, h.reject(ErrMeshMismatch, fmt.Sprintf("mesh %q, peer is in mesh %q", local.Mesh, remote.Mesh))
	case remote.Codec != local.Codec:
		return hello{}, h.reject(ErrCodecMismatch, fmt.Sprintf("codec %q, peer speaks %q", local.Codec, remote.Codec))
	case remote.Suite != local.Suite:
		return hello{}, h.rejectCode(rejectSuite, ErrHandshake, fmt.Sprintf("key exchange suite %d, peer offers %d", local.Suite, remote.Suite))
	}
	return remote, nil
}

// read reads one frame. A Reject from the peer becomes its CloseError; bad
// bytes are answered with a Reject.
func (h *handshaker) read() (kind byte, body []byte, err error) {
	hdr := h.buf[:handshakeHeader]
	if _, err := io.ReadFull(h.conn, hdr); err != nil {
		return 0, nil, h.ioErr(err)
	}
	kind, n, err := parseHeader(hdr)
	if err != nil {
		sentinel := ErrHandshake
		if errors.Is(err, ErrVersion) {
			sentinel = ErrVersion
		}
		return 0, nil, h.reject(sentinel, err.Error())
	}
	body = h.buf[handshakeHeader : handshakeHeader+n]
	if _, err := io.ReadFull(h.conn, body); err != nil {
		return 0, nil, h.ioErr(err)
	}
	if kind == kindReject {
		code, reason, err := parseReject(body)
		if err != nil {
			return 0, nil, closeErr(ErrRejected, true, err.Error())
		}
		sentinel, ok := rejectSentinels[code]
		if !ok {
			sentinel = ErrRejected
		}
		return 0, nil, closeErr(sentinel, true, reason)
	}
	return kind, body, nil
}

// reject tells the peer why, as well as it can, and returns our error.
func (h *handshaker) reject(sentinel error, reason string) error {
	return h.rejectCode(rejectCode(sentinel), sentinel, reason)
}

func (h *handshaker) rejectCode(code byte, sentinel error, reason string) error {
	var b [handshakeHeader + 2 + maxString]byte
	_, _ = h.conn.Write(appendReject(b[:0], code, reason))
	return closeErr(sentinel, false, reason)
}

// ioErr turns a read or write failure into the handshake's error.
func (h *handshaker) ioErr(err error) error {
	if h.ctx.Err() != nil {
		return fmt.Errorf("mesh: handshake: %w", h.ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Tell the peer, if it is listening at all; the write may not fit in
		// the expired deadline, so give it a moment.
		h.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		return h.reject(ErrHandshakeTimeout, "no handshake in time")
	}
	return closeErr(ErrConnLost, true, "connection ended during the handshake: "+err.Error())
}
