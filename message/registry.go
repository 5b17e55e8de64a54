package message

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/lanmesh/lanmesh/codec"
)

// Code ranges. Codes are append-only: a code once given a meaning keeps it.
const (
	// FirstAppCode..LastAppCode are the codes applications register.
	FirstAppCode byte = 0x05
	LastAppCode  byte = 0xDF
	// FirstControlCode..LastControlCode are lanmesh's own control messages
	// (Ping, Pong, Bye and those to come); Register refuses them.
	FirstControlCode byte = 0xE0
	LastControlCode  byte = 0xFF
	// Code 0x00 is never a message; 0x01..0x04 are cable_car's built-ins.

	// MaxNameLen is the longest type name.
	MaxNameLen = 64
	// ControlPrefix starts the names of control messages; Register refuses it.
	ControlPrefix = "lanmesh."
)

// Errors of registration.
var (
	// ErrDuplicate: the code, the name or the Go type is registered already.
	ErrDuplicate = errors.New("message: already registered")
	// ErrReserved: the code or name is lanmesh's own.
	ErrReserved = errors.New("message: reserved")
	// ErrInvalid: the type is not a struct, the name is not a plain
	// identifier, or the binary methods come half.
	ErrInvalid = errors.New("message: invalid registration")
)

// Registry maps Go types to one-byte codes and to names. Lookups are lock-free
// (they read an immutable snapshot), so the hot path never waits on
// registration; registering copies the snapshot. It is safe for concurrent use.
type Registry struct {
	writeMu sync.Mutex // serializes writers; readers never take it
	snap    atomic.Pointer[snapshot]
}

type snapshot struct {
	byCode [256]*codec.Type
	byName map[string]*codec.Type
	byType map[reflect.Type]*codec.Type
}

var _ codec.Types = (*Registry)(nil)

// NewRegistry returns a registry holding the built-in messages (Identify,
// Join, Retry, Quit) and lanmesh's control messages.
func NewRegistry() *Registry {
	r := &Registry{}
	r.snap.Store(&snapshot{byName: map[string]*codec.Type{}, byType: map[reflect.Type]*codec.Type{}})
	for _, add := range builtins {
		if err := add(r); err != nil {
			panic(err) // the built-in table is fixed; a clash is a bug here
		}
	}
	return r
}

// Default is the registry that nodes use unless their Config names another.
// Register application types on it at init time.
var Default = NewRegistry()

// Register adds the struct type T under code and name. It returns an error
// wrapping ErrDuplicate, ErrReserved or ErrInvalid.
//
// For the binary codec, T (or *T) implements encoding.BinaryAppender and *T
// implements encoding.BinaryUnmarshaler; a struct with no fields needs
// neither. For msgpack and JSON, struct tags are enough.
func Register[T any](r *Registry, code byte, name string) error {
	if code == 0 || code >= FirstControlCode {
		return fmt.Errorf("%w: code 0x%02x (applications use 0x%02x..0x%02x)", ErrReserved, code, FirstAppCode, LastAppCode)
	}
	if len(name) >= len(ControlPrefix) && name[:len(ControlPrefix)] == ControlPrefix {
		return fmt.Errorf("%w: name %q (the %q prefix is lanmesh's)", ErrReserved, name, ControlPrefix)
	}
	return register[T](r, code, name)
}

// MustRegister is Register that panics, for package-level registration.
func MustRegister[T any](r *Registry, code byte, name string) {
	if err := Register[T](r, code, name); err != nil {
		panic(err)
	}
}

func register[T any](r *Registry, code byte, name string) error {
	rt := reflect.TypeFor[T]()
	if rt.Kind() != reflect.Struct {
		return fmt.Errorf("%w: %v is not a struct type (register the struct, not a pointer to it)", ErrInvalid, rt)
	}
	if err := checkName(name); err != nil {
		return err
	}
	empty := rt.NumField() == 0
	if !empty {
		pt := reflect.PointerTo(rt)
		appender := reflect.TypeFor[encoding.BinaryAppender]()
		canAppend := rt.Implements(appender) || pt.Implements(appender)
		canUnmarshal := pt.Implements(reflect.TypeFor[encoding.BinaryUnmarshaler]())
		if canAppend != canUnmarshal {
			return fmt.Errorf("%w: %v has only one of AppendBinary and UnmarshalBinary", ErrInvalid, rt)
		}
	}
	t := &codec.Type{Code: code, Name: name, GoType: rt, Empty: empty, New: func() any { return new(T) }}
	if pointerFree(rt) {
		// Values that share an array keep only the array alive, never
		// another value's strings or slices.
		t.NewArray = func(dst []any) {
			a := make([]T, len(dst))
			for i := range dst {
				dst[i] = &a[i]
			}
		}
	}

	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old := r.snap.Load()
	if prev := old.byCode[code]; prev != nil {
		return fmt.Errorf("%w: code 0x%02x is %s (%v)", ErrDuplicate, code, prev.Name, prev.GoType)
	}
	if prev := old.byName[name]; prev != nil {
		return fmt.Errorf("%w: name %q is code 0x%02x (%v)", ErrDuplicate, name, prev.Code, prev.GoType)
	}
	if prev := old.byType[rt]; prev != nil {
		return fmt.Errorf("%w: %v is %q, code 0x%02x", ErrDuplicate, rt, prev.Name, prev.Code)
	}
	next := &snapshot{byCode: old.byCode, byName: make(map[string]*codec.Type, len(old.byName)+1),
		byType: make(map[reflect.Type]*codec.Type, len(old.byType)+1)}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	for k, v := range old.byType {
		next.byType[k] = v
	}
	next.byCode[code] = t
	next.byName[name] = t
	next.byType[rt] = t
	r.snap.Store(next)
	return nil
}

// checkName allows what every peer language can use as a class name: ASCII
// letters, digits, '_', '.', '-'; 1 to MaxNameLen bytes. Such names need no
// escaping in JSON.
func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name %q must be 1 to %d bytes", ErrInvalid, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: name %q: byte %q is not a letter, digit, '_', '.' or '-'", ErrInvalid, name, c)
		}
	}
	return nil
}

// TypeOf returns the registered type of msg, a struct value or a pointer to
// one. It does not allocate.
func (r *Registry) TypeOf(msg any) (*codec.Type, error) {
	rt := reflect.TypeOf(msg)
	if rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if t := r.snap.Load().byType[rt]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %v", codec.ErrNotRegistered, rt)
}

// ByCode returns the type registered under code, or nil.
func (r *Registry) ByCode(code byte) *codec.Type { return r.snap.Load().byCode[code] }

// ByName returns the type registered under name, or nil.
func (r *Registry) ByName(name string) *codec.Type { return r.snap.Load().byName[name] }

// Types lists every registered type in code order.
func (r *Registry) Types() []*codec.Type {
	s := r.snap.Load()
	out := make([]*codec.Type, 0, len(s.byType))
	for _, t := range s.byType {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// Register adds T to the Default registry; see the generic Register.
func RegisterDefault[T any](code byte, name string) error { return Register[T](Default, code, name) }

// pointerFree reports whether values of t hold no pointers: numbers, bools,
// and arrays and structs of them.
func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
