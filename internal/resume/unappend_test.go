package resume

import (
	"bytes"
	"testing"
)

func TestUnappend(t *testing.T) {
	j, err := NewJournal(JournalConfig{MaxFrames: 4, MaxBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := j.Append(bytes.Repeat([]byte{byte(i + 1)}, 10)); err != nil {
			t.Fatal(err)
		}
	}
	j.Unappend()
	if j.Next() != 3 {
		t.Fatalf("Next after Unappend = %d, want 3", j.Next())
	}
	if f, b := j.Kept(); f != 2 || b != 20 {
		t.Fatalf("kept %d frames, %d bytes; want 2, 20", f, b)
	}
	seq, err := j.Append([]byte{9, 9})
	if err != nil || seq != 3 {
		t.Fatalf("Append after Unappend = %d, %v", seq, err)
	}
	got, next, err := j.AppendFrames(nil, 1, 1<<10)
	if err != nil || next != 4 {
		t.Fatalf("AppendFrames: next %d, %v", next, err)
	}
	want := append(append(bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 10)...), 9, 9)
	if !bytes.Equal(got, want) {
		t.Fatalf("frames % x, want % x", got, want)
	}
	// Down to empty and back.
	for range 3 {
		j.Unappend()
	}
	if j.Next() != 1 || j.From() != 1 {
		t.Fatalf("Next %d From %d after taking back all, want 1 1", j.Next(), j.From())
	}
	if _, err := j.Append([]byte{7}); err != nil {
		t.Fatal(err)
	}
	if f := j.Frame(1); !bytes.Equal(f, []byte{7}) {
		t.Fatalf("Frame(1) = % x", f)
	}
}

// A fresh side that sent at once (SendNow) more than its budget keeps,
// before it read the peer's Resume, lost nothing: every frame went out on
// the link after its Resume.
func TestSendNowOverBudgetLosesNothing(t *testing.T) {
	jc := JournalConfig{MaxFrames: 4, MaxBytes: 1 << 10}
	a, err := NewSession(jc, DefaultTrackerConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSession(jc, DefaultTrackerConfig())
	if err != nil {
		t.Fatal(err)
	}
	pa := Pair{LocalNode: ID{1}, LocalInstance: ID{2}, RemoteNode: ID{3}, RemoteInstance: ID{4}}
	pb := Pair{LocalNode: ID{3}, LocalInstance: ID{4}, RemoteNode: ID{1}, RemoteInstance: ID{2}}
	sec := func() (Secret, error) { return Secret{9}, nil }
	oa, err := a.Open(pa, Binding{}, sec)
	if err != nil || !oa.SendNow {
		t.Fatalf("Open: %v, SendNow %v", err, oa.SendNow)
	}
	for i := range 10 {
		if _, err := a.Journal.Append([]byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	ob, err := b.Open(pb, Binding{}, sec)
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := ob.Own.AppendBinary(nil)
	res, err := a.Accept(oa, wire)
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != nil || res.Start != 11 {
		t.Fatalf("Accept: lost %v, start %d; want nothing lost, start 11", res.Lost, res.Start)
	}
}
