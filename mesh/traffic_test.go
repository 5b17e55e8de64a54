package mesh

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/message"
)

// encodeCount counts how often its binary form is made.
var encodeCount atomic.Int64

// Counted is a message that counts its encodings.
type Counted struct{ N uint32 }

func (m Counted) AppendBinary(b []byte) ([]byte, error) {
	encodeCount.Add(1)
	return append(b, byte(m.N>>24), byte(m.N>>16), byte(m.N>>8), byte(m.N)), nil
}

func (m *Counted) UnmarshalBinary(p []byte) error {
	if len(p) != 4 {
		return errors.New("Counted: want 4 bytes")
	}
	m.N = uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	return nil
}

// The traffic log records the size of the frame the link wrote or read,
// and encodes nothing a second time to learn it: one Send, one Broadcast,
// one Request and its Reply each encode their message once.
func TestTrafficLogSizesFromTheCodec(t *testing.T) {
	leaktest.Check(t)
	reg := message.NewRegistry()
	message.MustRegister[Msg32](reg, codeMsg32, "Msg32")
	message.MustRegister[Text](reg, codeText, "Text")
	message.MustRegister[Counted](reg, 0x70, "Counted")
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		c.Link.AutoFlush = true
		c.Registry = reg
	})
	fullMesh(t, nodes)
	a, b := nodes[0], nodes[1]
	a.Traffic().Start()
	b.Traffic().Start()
	encodeCount.Store(0)
	if err := a.Send(b.ID(), &Counted{N: 1}); err != nil {
		t.Fatal(err)
	}
	recv(t, b)
	if _, err := a.Broadcast(&Counted{N: 2}); err != nil {
		t.Fatal(err)
	}
	recv(t, b)
	if got := encodeCount.Load(); got != 2 {
		t.Errorf("2 messages sent with the log on were encoded %d times", got)
	}
	for _, n := range []*Node{a, b} {
		all := n.Traffic().All()
		if len(all) != 2 {
			t.Fatalf("%s logged %d records, want 2: %+v", n.Name(), len(all), all)
		}
		for _, r := range all {
			if r.Type != "Counted" || r.Size != 6 { // length, code, 4 bytes
				t.Errorf("%s: record %+v, want a Counted of 6 bytes", n.Name(), r)
			}
		}
	}
}
