package lane

import (
	"bytes"
	"net/netip"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	good, _ := goldenDatagram().AppendBinary(nil)
	f.Add(good)
	f.Add(good[:HeaderSize+5])
	for _, keyed := range []bool{false, true} {
		a, _ := pair(f, keyed)
		c := &capture{}
		s, _ := NewSender(testConfig(), a, c.send)
		s.Enqueue(Sequenced, 1, []byte{1, 2, 3})
		s.Enqueue(Unreliable, 2, []byte("event"))
		s.Enqueue(Unreliable, 3, make([]byte, 200)) // a two-byte length
		s.Flush()
		f.Add(c.dgrams[0])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
}

// FuzzParseDatagram: the parser never panics, and what it accepts it writes
// back byte for byte (the format has one encoding), and parses again equal.
func FuzzParseDatagram(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Datagram
		if err := ParseDatagram(data, &d); err != nil {
			return
		}
		b, err := d.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed but does not append: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("append gave\n%x\nfrom\n%x", b, data)
		}
		var again Datagram
		if err := ParseDatagram(b, &again); err != nil || len(again.Messages) != len(d.Messages) || again.Header != d.Header {
			t.Fatalf("second parse: %v, %+v", err, again)
		}
	})
}

// FuzzReceive: hostile datagrams to a keyed and an unkeyed lane never panic,
// and every one is either delivered or dropped with a counted reason. Data
// that starts with the receiver's header gets as far as the seal and the
// items.
func FuzzReceive(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, keyed := range []bool{false, true} {
			_, b := pair(t, keyed)
			l, err := New(testConfig(), b, func([]byte) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			in := data
			if len(data) > 0 && data[0]&1 == 1 {
				// Aim past the token check.
				flags := byte(0)
				if keyed {
					flags = FlagSealed
				}
				in = append([]byte{Version, flags}, tokB[:]...)
				in = append(in, data...)
			}
			out, err := l.Receive(bytes.Clone(in), netip.AddrPort{}, testNow, nil)
			st := l.Stats()
			drops := st.DropMalformed + st.DropSession + st.DropMode + st.DropAuth + st.DropReplay + st.DropTooOld
			if (err == nil) != (st.RecvDatagrams == 1) || (err != nil) != (drops == 1) {
				t.Fatalf("err %v, stats %+v", err, st)
			}
			for _, m := range out {
				if m.Kind != Sequenced && m.Kind != Unreliable {
					t.Fatalf("delivered a %v", m.Kind)
				}
			}
		}
	})
}
