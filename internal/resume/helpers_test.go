package resume

import (
	"encoding/binary"
	"testing"
)

func newJournal(t testing.TB, frames, bytes int, o Overflow) *Journal {
	t.Helper()
	j, err := NewJournal(JournalConfig{MaxFrames: frames, MaxBytes: bytes, Overflow: o})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func newTracker(t testing.TB) *Tracker {
	t.Helper()
	tr, err := NewTracker(DefaultTrackerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// frameOf makes a recognisable frame of n bytes (n >= 8) for message m.
func frameOf(m uint64, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, m)
	for i := 8; i < n; i++ {
		b[i] = byte(m) + byte(i)
	}
	return b
}

func msgOf(t testing.TB, frame []byte) uint64 {
	t.Helper()
	if len(frame) < 8 {
		t.Fatalf("frame of %d bytes", len(frame))
	}
	m := binary.BigEndian.Uint64(frame)
	for i := 8; i < len(frame); i++ {
		if frame[i] != byte(m)+byte(i) {
			t.Fatalf("frame of message %d corrupted at byte %d", m, i)
		}
	}
	return m
}

func mustAppend(t testing.TB, j *Journal, frame []byte) uint64 {
	t.Helper()
	seq, err := j.Append(frame)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

// resend returns the messages of the frames AppendFrames gives from seq on,
// in small pieces, as a link's writer would take them.
func resend(t testing.TB, j *Journal, seq uint64, frameSize int) []uint64 {
	t.Helper()
	var out []uint64
	for seq < j.Next() {
		buf, next, err := j.AppendFrames(nil, seq, 3*frameSize)
		if err != nil {
			t.Fatalf("AppendFrames(%d): %v", seq, err)
		}
		if next == seq {
			t.Fatalf("AppendFrames(%d) made no progress", seq)
		}
		for ; len(buf) > 0; buf = buf[frameSize:] {
			out = append(out, msgOf(t, buf[:frameSize]))
		}
		seq = next
	}
	return out
}
