package mesh

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/flynn/noise"

	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/meshkey"
)

// The keyed handshake (SPEC.md section 10 has the bytes):
//
//	initiator                                responder
//	Preamble{suite, key id} (clear)   ->     key id known? else Reject 9
//	Noise msg 1: e, payload Hello     ->     opens under the PSK (no DH yet)
//	                                  <-     Noise msg 2: e, ee, payload Hello
//	record 0: Accept (key confirmation) ->   the link counts only once it opens
//
// The Noise prologue is the preamble frame followed by the mesh name, so an
// edited preamble, or another mesh, fails the handshake. A Node that offers
// resumable links says so in its Hello's suite data (SPEC.md section 12.4);
// the session secret and the link's binding then come from the Split's
// keys and the handshake hash (section 12.5).

// preambleBody is the size of a Preamble body: suite, key id.
const preambleBody = 1 + 8

var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)

func appendPreamble(dst []byte, suite byte, id meshkey.ID) []byte {
	dst = appendHeader(dst, kindPreamble)
	dst[len(dst)-1] = preambleBody
	dst = append(dst, suite)
	return append(dst, id[:]...)
}

// appendFrame appends a handshake frame of kind with body.
func appendFrame(dst []byte, kind byte, body []byte) []byte {
	dst = appendHeader(dst, kind)
	binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(body)))
	return append(dst, body...)
}

func newNoise(o hsOptions, initiator bool, psk [32]byte, preamble []byte, mesh string) (*noise.HandshakeState, error) {
	prologue := make([]byte, 0, len(preamble)+len(mesh))
	prologue = append(append(prologue, preamble...), mesh...)
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:           noiseSuite,
		Random:                o.rand,
		Pattern:               noise.HandshakeNN,
		Initiator:             initiator,
		Prologue:              prologue,
		PresharedKey:          psk[:],
		PresharedKeyPlacement: 0,
	})
}

// initiate is the dialling side of a keyed handshake.
func (h *handshaker) initiate(local hello, o hsOptions) (session, error) {
	d := o.keys.Entries[o.keyIndex%len(o.keys.Entries)]
	if k, ok := o.keys.Lookup(o.prefer); ok && o.hasPrefer {
		d = k
	}
	local.Suite = suiteNoise
	if o.resume {
		local.SuiteData = keyedOffer
	}
	pre := appendPreamble(nil, suiteNoise, d.ID)
	hs, err := newNoise(o, true, d.PSK, pre, local.Mesh)
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	hello, err := local.appendFrame(nil)
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	msg1, _, _, err := hs.WriteMessage(nil, hello)
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	if _, err := h.conn.Write(appendFrame(pre, kindNoise, msg1)); err != nil {
		return session{}, h.ioErr(err)
	}
	kind, body, err := h.read()
	switch {
	case err != nil:
		return session{}, err
	case kind == kindHello:
		// An unkeyed peer sends its Hello without waiting.
		return session{}, h.rejectCode(rejectKeyRequired, ErrUnkeyedPeer, "this mesh requires a mesh key")
	case kind != kindNoise:
		return session{}, h.reject(ErrHandshake, fmt.Sprintf("expected a noise message, got frame kind %d", kind))
	}
	payload, c1, c2, err := hs.ReadMessage(nil, body)
	if err != nil || c1 == nil {
		return session{}, h.rejectCode(rejectWrongKey, ErrWrongKey,
			fmt.Sprintf("the peer's handshake did not open under key id %s", d.ID))
	}
	remote, offered, err := h.checkHello(payload, local, o.resume)
	if err != nil {
		return session{}, err
	}
	s := session{remote: remote, keyed: true, keyID: d.ID,
		send: newRecordCipher(c1.UnsafeKey(), 0), recv: newRecordCipher(c2.UnsafeKey(), 0),
		laneSecret: laneSecret(c1.UnsafeKey(), c2.UnsafeKey()),
		resume:     keyedResume(offered, hs, c1, c2)}
	// Key confirmation: the responder counts the link only once this opens.
	confirm, err := s.send.sealOne(nil, appendAccept(nil))
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	if _, err := h.conn.Write(confirm); err != nil {
		return session{}, h.ioErr(err)
	}
	return s, nil
}

// respond is the accepting side of a keyed handshake. A first message under
// a key it does not hold is refused on the key id, or when its payload fails
// to open, before any Diffie-Hellman work.
func (h *handshaker) respond(local hello, o hsOptions) (session, error) {
	local.Suite = suiteNoise
	if o.resume {
		local.SuiteData = keyedOffer
	}
	kind, body, err := h.read()
	switch {
	case err != nil:
		return session{}, err
	case kind == kindHello:
		return session{}, h.rejectCode(rejectKeyRequired, ErrUnkeyedPeer, "this mesh requires a mesh key")
	case kind != kindPreamble:
		return session{}, h.reject(ErrHandshake, fmt.Sprintf("expected a preamble, got frame kind %d", kind))
	case len(body) != preambleBody:
		return session{}, h.reject(ErrHandshake, fmt.Sprintf("preamble of %d bytes, want %d", len(body), preambleBody))
	case body[0] != suiteNoise:
		return session{}, h.rejectCode(rejectSuite, ErrHandshake, fmt.Sprintf("key exchange suite %d, peer offers %d", suiteNoise, body[0]))
	}
	id := meshkey.ID(body[1:])
	d, ok := o.keys.Lookup(id)
	if !ok {
		return session{}, h.rejectCode(rejectWrongKey, ErrWrongKey,
			fmt.Sprintf("unknown mesh key id %s (another key, or the same key for another mesh name)", id))
	}
	pre := appendPreamble(nil, suiteNoise, id)
	kind, body, err = h.read()
	switch {
	case err != nil:
		return session{}, err
	case kind != kindNoise:
		return session{}, h.reject(ErrHandshake, fmt.Sprintf("expected a noise message, got frame kind %d", kind))
	}
	hs, err := newNoise(o, false, d.PSK, pre, local.Mesh)
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	payload, _, _, err := hs.ReadMessage(nil, body)
	if err != nil {
		return session{}, h.rejectCode(rejectWrongKey, ErrWrongKey,
			fmt.Sprintf("the first handshake message did not open under key id %s", id))
	}
	remote, offered, err := h.checkHello(payload, local, o.resume)
	if err != nil {
		return session{}, err
	}
	hello, err := local.appendFrame(nil)
	if err != nil {
		return session{}, closeErr(ErrHandshake, false, err.Error())
	}
	msg2, c1, c2, err := hs.WriteMessage(nil, hello)
	if err != nil || c1 == nil {
		return session{}, closeErr(ErrHandshake, false, fmt.Sprint("noise: ", err))
	}
	if _, err := h.conn.Write(appendFrame(nil, kindNoise, msg2)); err != nil {
		return session{}, h.ioErr(err)
	}
	s := session{remote: remote, keyed: true, keyID: id,
		send: newRecordCipher(c2.UnsafeKey(), 0), recv: newRecordCipher(c1.UnsafeKey(), 0),
		laneSecret: laneSecret(c1.UnsafeKey(), c2.UnsafeKey()),
		resume:     keyedResume(offered, hs, c1, c2)}
	// Key confirmation: the initiator's first record, an Accept. A replayed
	// first message ends here, for want of the initiator's ephemeral key.
	const confirmLen = handshakeHeader + recordTag
	rec := h.buf[:recordHeader+confirmLen]
	if _, err := io.ReadFull(h.conn, rec); err != nil {
		return session{}, h.ioErr(err)
	}
	n, err := recordLen(rec[:recordHeader])
	if err != nil || n != confirmLen {
		return session{}, closeErr(ErrHandshake, false, "no key confirmation from the peer")
	}
	plain, err := s.recv.open(rec[:recordHeader], rec[recordHeader:])
	if err != nil || subtle.ConstantTimeCompare(plain, appendAccept(nil)) != 1 {
		return session{}, closeErr(ErrHandshake, false, "the peer's key confirmation did not open (a replayed handshake?)")
	}
	return s, nil
}

// checkHello parses a Hello carried in a Noise payload and checks it
// against ours, refusing (in the clear) what does not match. When this side
// offers resume (offer), offered says whether the peer does too; a
// malformed offer is refused as a malformed Hello. An older peer sends no
// suite data: it does not speak resume.
func (h *handshaker) checkHello(frame []byte, local hello, offer bool) (remote hello, offered bool, err error) {
	remote, err = parseHello(frame)
	switch {
	case err != nil:
		return hello{}, false, h.reject(ErrHandshake, err.Error())
	case remote.Mesh != local.Mesh:
		return hello{}, false, h.reject(ErrMeshMismatch, fmt.Sprintf("mesh %q, peer is in mesh %q", local.Mesh, remote.Mesh))
	case remote.Codec != local.Codec:
		return hello{}, false, h.reject(ErrCodecMismatch, fmt.Sprintf("codec %q, peer speaks %q", local.Codec, remote.Codec))
	case remote.Suite != suiteNoise:
		return hello{}, false, h.rejectCode(rejectSuite, ErrHandshake, fmt.Sprintf("key exchange suite %d, peer's hello says %d", suiteNoise, remote.Suite))
	case !offer:
		return remote, false, nil
	}
	_, offered, err = resume.ParseOffer(remote.SuiteData, true)
	if err != nil {
		return hello{}, false, h.reject(ErrHandshake, "hello: "+err.Error())
	}
	return remote, offered, nil
}

// keyedOffer is the suite data of a keyed Hello that offers resume
// (SPEC.md section 12.4: 01 01 01).
var keyedOffer = resume.AppendOffer(nil, resume.Offer{Version: resume.Version})

// keyedResume is a keyed link's part of the resume exchange, once the last
// handshake message is written or read (SPEC.md section 12.5): the binding
// of the handshake hash, which covers both ephemeral keys, and the Split's
// keys, which only the two ends hold, for the session secret.
func keyedResume(offered bool, hs *noise.HandshakeState, c1, c2 *noise.CipherState) hsResume {
	if !offered {
		return hsResume{}
	}
	return hsResume{ok: true, keyed: true, bind: resume.KeyedBinding(hs.ChannelBinding()),
		i2r: c1.UnsafeKey(), r2i: c2.UnsafeKey()}
}
