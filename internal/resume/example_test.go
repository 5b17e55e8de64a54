package resume_test

import (
	"fmt"

	"github.com/lanmesh/lanmesh/internal/resume"
)

// One direction of a session across a cut: the sender journals what it
// sends, the link drops with frames in flight, and the resume sends again
// exactly what the receiver had not delivered.
func Example() {
	j, _ := resume.NewJournal(resume.DefaultJournalConfig())
	t, _ := resume.NewTracker(resume.DefaultTrackerConfig())

	stream, _ := t.Fence() // the first link
	stream.Start(1)
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		j.Append([]byte(m))
	}
	// Only a, b and c arrive before the cut.
	stream.Deliver(3, func(skip int) (int, int) { return 3, 3 })
	if n, ok := t.TakeAck(); ok {
		fmt.Println("ack", n, "is lost with the link")
	}
	j.Append([]byte("f")) // sent during the cut: journaled

	// The new link: the receiver fences and says what it delivered; the
	// sender resends from there.
	stream, delivered := t.Fence()
	start, lost, _ := j.Resume(delivered, 0)
	stream.Start(start)
	frames, _, _ := j.AppendFrames(nil, start, 1<<16)
	fmt.Printf("resend from %d: %q, lost: %v\n", start, frames, lost)
	stream.Deliver(len(frames), func(skip int) (int, int) { return len(frames) - skip, len(frames) })
	fmt.Println("delivered up to", t.Delivered())
	// Output:
	// ack 3 is lost with the link
	// resend from 4: "def", lost: <nil>
	// delivered up to 6
}

// A journal over its budget drops its oldest frames; a resume that needs
// them reports exactly which.
func ExampleJournal_Resume() {
	j, _ := resume.NewJournal(resume.JournalConfig{MaxFrames: 592, MaxBytes: 1 << 20})
	for range 1040 {
		seq, _ := j.Append([]byte("x"))
		j.Ack(seq)
	}
	for range 1184 { // a cut: nothing acknowledged
		j.Append([]byte("y"))
	}
	start, lost, _ := j.Resume(1040, 0)
	fmt.Println("peer ann:", lost)
	fmt.Println("resend from", start)
	// Output:
	// peer ann: messages 1041-1632 (592) lost: resend budget exceeded
	// resend from 1633
}
