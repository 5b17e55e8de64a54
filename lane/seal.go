package lane

import (
	"crypto/cipher"
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// A sealed datagram is its clear header, then the items sealed with
// ChaCha20-Poly1305 under the direction's key, with the header as additional
// data and the nonce 4 zero bytes then the counter, little-endian (the
// layout of Noise's ChaChaPoly and of the link's records).

func newAEAD(key [32]byte) cipher.AEAD {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic(err) // the key is 32 bytes
	}
	return aead
}

func putNonce(nonce *[chacha20poly1305.NonceSize]byte, counter uint64) []byte {
	binary.LittleEndian.PutUint64(nonce[4:], counter)
	return nonce[:]
}
