package message_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

type pos struct{ X, Y int }

func (p pos) AppendBinary(b []byte) ([]byte, error) { return append(b, byte(p.X), byte(p.Y)), nil }
func (p *pos) UnmarshalBinary(b []byte) error {
	if len(b) != 2 {
		return errors.New("pos: want 2 bytes")
	}
	p.X, p.Y = int(b[0]), int(b[1])
	return nil
}

type halfBinary struct{ A int }

func (halfBinary) AppendBinary(b []byte) ([]byte, error) { return b, nil }

type other struct{ A string }
type empty struct{}

func TestBuiltins(t *testing.T) {
	r := message.NewRegistry()
	for _, tt := range []struct {
		msg  any
		code byte
		name string
	}{
		{message.Identify{}, 0x01, "MsgIdentify"}, {&message.Join{}, 0x02, "MsgJoin"},
		{message.Retry{}, 0x03, "MsgRetry"}, {message.Quit{}, 0x04, "MsgQuit"},
		{message.Ping{}, 0xE0, "lanmesh.Ping"}, {message.Pong{}, 0xE1, "lanmesh.Pong"}, {message.Bye{}, 0xE2, "lanmesh.Bye"},
		{message.Request{}, 0xE3, "lanmesh.Request"}, {message.Reply{}, 0xE4, "lanmesh.Reply"}, {message.Refuse{}, 0xE5, "lanmesh.Refuse"},
	} {
		ty, err := r.TypeOf(tt.msg)
		if err != nil || ty.Code != tt.code || ty.Name != tt.name {
			t.Errorf("%T: %+v, %v; want code 0x%02x name %s", tt.msg, ty, err, tt.code, tt.name)
		}
		if r.ByCode(tt.code) != ty || r.ByName(tt.name) != ty {
			t.Errorf("%T: lookups by code and name disagree", tt.msg)
		}
	}
	if !r.ByCode(0x02).Empty || r.ByCode(0x01).Empty {
		t.Error("Join must be Empty and Identify not")
	}
}

func TestRegisterRules(t *testing.T) {
	r := message.NewRegistry()
	if err := message.Register[pos](r, 0x10, "Pos"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"same code", message.Register[other](r, 0x10, "Other"), message.ErrDuplicate},
		{"same name", message.Register[other](r, 0x11, "Pos"), message.ErrDuplicate},
		{"same type", message.Register[pos](r, 0x12, "Pos2"), message.ErrDuplicate},
		{"cable_car code", message.Register[other](r, 0x01, "Other"), message.ErrDuplicate},
		{"cable_car name", message.Register[other](r, 0x20, "MsgJoin"), message.ErrDuplicate},
		{"code 0", message.Register[other](r, 0x00, "Other"), message.ErrReserved},
		{"control code", message.Register[other](r, 0xE5, "Other"), message.ErrReserved},
		{"control name", message.Register[other](r, 0x20, "lanmesh.Other"), message.ErrReserved},
		{"pointer type", message.Register[*other](r, 0x20, "Other"), message.ErrInvalid},
		{"not a struct", message.Register[int](r, 0x20, "Int"), message.ErrInvalid},
		{"empty name", message.Register[other](r, 0x20, ""), message.ErrInvalid},
		{"name with a quote", message.Register[other](r, 0x20, `Ot"her`), message.ErrInvalid},
		{"name with a space", message.Register[other](r, 0x20, "Ot her"), message.ErrInvalid},
		{"long name", message.Register[other](r, 0x20, string(make([]byte, 65))), message.ErrInvalid},
		{"half binary", message.Register[halfBinary](r, 0x20, "Half"), message.ErrInvalid},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	// The failures above left nothing behind.
	if err := message.Register[other](r, 0x20, "Other"); err != nil {
		t.Fatalf("registering after refusals: %v", err)
	}
	if err := message.Register[empty](r, 0xDF, "Empty"); err != nil {
		t.Fatalf("last app code: %v", err)
	}
	if _, err := r.TypeOf(struct{ Z int }{}); !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("unregistered: %v", err)
	}
	if _, err := r.TypeOf(nil); !errors.Is(err, codec.ErrNotRegistered) {
		t.Errorf("nil: %v", err)
	}
	if got := r.Types(); len(got) != 17 || got[0].Code != 0x01 || got[len(got)-1].Code != message.CodeLaneTag {
		t.Errorf("Types() = %d types", len(got))
	}
}

func TestMustRegisterPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustRegister of a duplicate did not panic")
		}
	}()
	message.MustRegister[other](message.NewRegistry(), 0x01, "X")
}

// Lookups never wait for, or see half of, a registration in progress.
func TestConcurrentRegisterAndLookup(t *testing.T) {
	r := message.NewRegistry()
	var wg sync.WaitGroup
	wg.Add(2)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(done)
		_ = message.Register[pos](r, 0x10, "Pos")
		_ = message.Register[other](r, 0x11, "Other")
	}()
	go func() {
		defer wg.Done()
		for {
			if ty := r.ByCode(0x11); ty != nil && ty.Name != "Other" {
				t.Errorf("saw %+v", ty)
			}
			_, _ = r.TypeOf(pos{})
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	wg.Wait()
}

func TestIdentifyBinary(t *testing.T) {
	var m message.Identify
	if err := m.UnmarshalBinary([]byte("alice@box")); err != nil || m.Username != "alice" || m.Hostname != "box" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"alice", "a@b@c", "", "\xff@x"} {
		if err := m.UnmarshalBinary([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := (message.Identify{Username: "a@b", Hostname: "c"}).AppendBinary(nil); err == nil {
		t.Error("'@' in a username encoded")
	}
}

func TestByeAlwaysFits(t *testing.T) {
	long := ""
	for len(long) < 400 {
		long += "ü"
	}
	c := codec.NewBinary(message.NewRegistry())
	frame, err := c.AppendFrame(nil, message.Bye{Reason: long})
	if err != nil || len(frame) > codec.MaxBinaryFrame {
		t.Fatalf("len %d, %v", len(frame), err)
	}
	var b message.Bye
	if err := b.UnmarshalBinary(frame[2:]); err != nil {
		t.Fatalf("cut reason is not UTF-8: %v", err)
	}
}

// TestNewArrayOnlyWithoutPointers: a type's values may share one array
// (codec.Type.NewArray) only when they hold no pointers, so that a value
// kept never keeps another's string or slice alive; each element is a
// zero value of its own.
func TestNewArrayOnlyWithoutPointers(t *testing.T) {
	type flat struct {
		X, Y float32
		Tags [3]struct {
			On bool
			N  int64
		}
	}
	type named struct {
		ID   uint16
		Name string
	}
	type listed struct{ Points [2][]byte }
	r := message.NewRegistry()
	for _, err := range []error{
		message.Register[flat](r, 0x20, "flat"),
		message.Register[named](r, 0x21, "named"),
		message.Register[listed](r, 0x22, "listed"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	ft := r.ByCode(0x20)
	if ft.NewArray == nil || r.ByCode(0x21).NewArray != nil || r.ByCode(0x22).NewArray != nil {
		t.Fatalf("NewArray set: flat %v, named %v, listed %v", ft.NewArray != nil, r.ByCode(0x21).NewArray != nil, r.ByCode(0x22).NewArray != nil)
	}
	vs := make([]any, 4)
	ft.NewArray(vs)
	for i, v := range vs {
		p, ok := v.(*flat)
		if !ok || *p != (flat{}) {
			t.Fatalf("value %d: %#v", i, v)
		}
		p.X = float32(i)
	}
	if vs[0].(*flat).X != 0 || vs[3].(*flat).X != 3 {
		t.Fatalf("values share memory: %v", vs)
	}
}
