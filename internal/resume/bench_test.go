package resume

import (
	"testing"
)

// BenchmarkJournalAppendAck: the hot path of a Send on a resumable link,
// a frame journaled, and an acknowledgement every 64 frames (more often
// than the receiver's default). It must not allocate.
func BenchmarkJournalAppendAck(b *testing.B) {
	for _, size := range []int{16, 64, 254} {
		b.Run(sizeName(size), func(b *testing.B) {
			j := newJournal(b, DefaultMaxFrames, DefaultMaxBytes, DropOldest)
			frame := frameOf(1, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				seq, err := j.Append(frame)
				if err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					if err := j.Ack(seq); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkJournalAppendOverflow: a journal at its budget with no
// acknowledgement (a long cut): every Append drops the oldest frame.
func BenchmarkJournalAppendOverflow(b *testing.B) {
	j := newJournal(b, 4096, 64<<10, DropOldest)
	frame := frameOf(1, 40)
	for range 10000 {
		j.Append(frame)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Append(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJournalResend: copying 1000 journaled frames of 40 bytes out
// for a resume, 64 KiB at a time.
func BenchmarkJournalResend(b *testing.B) {
	j := newJournal(b, DefaultMaxFrames, DefaultMaxBytes, DropOldest)
	for i := range uint64(1000) {
		j.Append(frameOf(i, 40))
	}
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(40 * 1000)
	b.ReportAllocs()
	for b.Loop() {
		for seq := j.From(); seq < j.Next(); {
			var err error
			buf, seq, err = j.AppendFrames(buf[:0], seq, 64<<10)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTrackerDeliver: the reader's side, a batch of 32 frames per
// Deliver, and the acknowledgement check after it.
func BenchmarkTrackerDeliver(b *testing.B) {
	tr := newTracker(b)
	s, _ := tr.Fence()
	s.Start(1)
	deliver := func(skip int) (int, int) { return 32 - skip, 32 * 40 }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Deliver(32, deliver); err != nil {
			b.Fatal(err)
		}
		if tr.AckDue() {
			tr.TakeAck()
		}
	}
}

// BenchmarkResumeMessage: sealing and verifying one resume message (once
// per link that comes back).
func BenchmarkResumeMessage(b *testing.B) {
	sec := goldenSecret(b)
	pair := goldenPair(b)
	m := goldenMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		m.Seal(&sec, goldenBinding(), pair)
		if err := m.Verify(&sec, goldenBinding(), pair.flip()); err != nil {
			b.Fatal(err)
		}
	}
}

func sizeName(n int) string {
	switch n {
	case 16:
		return "16B"
	case 64:
		return "64B"
	}
	return "254B"
}
