package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// A frame whose type is known but whose body cannot be that type's closes
// the link with ErrProtocol and a reason; what came before it is delivered.
// (A frame of an unknown type is only skipped: see TestUnknownTypeDropped.)
func TestMalformedFrameClosesLink(t *testing.T) {
	for _, bad := range []struct {
		name  string
		frame []byte
	}{
		{"payload of the wrong size", []byte{5, codeMsg32, 1, 2, 3}},
		{"identify without @", []byte{5, 0x01, 'a', 'b', 'c'}},
		{"payload on a type with no fields", []byte{3, 0x02, 'x'}},
	} {
		t.Run(bad.name, func(t *testing.T) {
			eachTransport(t, func(t *testing.T, tc transportCase) {
				leaktest.Check(t)
				p := newRawPeer(t, tc, testConfig(t))
				good, _ := codec.NewBinary(testRegistry).AppendFrame(nil, &Msg32{Seq: 0})
				p.conn.Write(append(good, bad.frame...))
				receiveN(t, p.m, 1, 5*time.Second)
				ce := wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrProtocol, false)
				if !strings.Contains(ce.Reason, "malformed") {
					t.Errorf("reason %q does not say the frame was malformed", ce.Reason)
				}
			})
		})
	}
}
