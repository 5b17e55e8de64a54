package lane

import (
	"bytes"
	"net/netip"
	"testing"
)

var (
	tokA = Token{0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8}
	tokB = Token{0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8}
	// The secret a keyed handshake would export; fixed for golden bytes.
	testSecret = bytes.Repeat([]byte{0x5E}, 64)
	addrA      = netip.MustParseAddrPort("127.0.0.1:4001")
	addrB      = netip.MustParseAddrPort("127.0.0.1:4002")
)

// pair returns the two sessions of one link: a dialled b.
func pair(t testing.TB, keyed bool) (a, b Session) {
	t.Helper()
	var secret []byte
	if keyed {
		secret = testSecret
	}
	a, err := NewSession(tokA, tokB, true, secret)
	if err != nil {
		t.Fatal(err)
	}
	b, err = NewSession(tokB, tokA, false, secret)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// capture collects every datagram a Sender writes.
type capture struct{ dgrams [][]byte }

func (c *capture) send(b []byte) error {
	c.dgrams = append(c.dgrams, bytes.Clone(b))
	return nil
}

func (c *capture) take() [][]byte {
	d := c.dgrams
	c.dgrams = nil
	return d
}

func testConfig() Config { return DefaultConfig() }

// openAll opens every datagram with r and returns the messages, payloads
// copied.
func openAll(t testing.TB, r *Receiver, dgrams [][]byte) []Message {
	t.Helper()
	var out []Message
	for _, d := range dgrams {
		var err error
		n := len(out)
		out, err = r.Open(d, netip.AddrPort{}, out)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		for i := n; i < len(out); i++ {
			out[i].Payload = bytes.Clone(out[i].Payload)
		}
	}
	return out
}
