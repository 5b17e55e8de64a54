package codec

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The top level of a message is encoded as a map by this file rather than by
// msgpack/v5 itself, because the library prefers a type's MarshalBinary,
// UnmarshalBinary or text methods to its fields, and message types that
// travel over the binary codec have exactly those. Nested values are the
// library's.

type msgField struct {
	name      string
	index     []int
	omitEmpty bool
}

type fieldTable struct {
	list   []msgField
	byName map[string]*msgField
}

var fieldTables sync.Map // reflect.Type -> *fieldTable

func fieldsOf(rt reflect.Type) *fieldTable {
	if ft, ok := fieldTables.Load(rt); ok {
		return ft.(*fieldTable)
	}
	ft := &fieldTable{byName: map[string]*msgField{}}
	collectFields(ft, rt, nil, 0)
	for i := range ft.list {
		ft.byName[ft.list[i].name] = &ft.list[i]
	}
	actual, _ := fieldTables.LoadOrStore(rt, ft)
	return actual.(*fieldTable)
}

// collectFields lists exported fields, keyed by the msgpack tag, else the
// json tag, else the Go name; "-" skips a field; an untagged embedded struct
// is inlined (depth-limited: types may refer to themselves through pointers).
func collectFields(ft *fieldTable, rt reflect.Type, prefix []int, depth int) {
	for i := range rt.NumField() {
		f := rt.Field(i)
		tag, ok := f.Tag.Lookup("msgpack")
		if !ok {
			tag = f.Tag.Get("json")
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		index := append(append([]int(nil), prefix...), i)
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct && depth < 4 {
			collectFields(ft, f.Type, index, depth+1)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := fieldIndex(ft, name); dup {
			continue // the shallower field wins, as in encoding/json
		}
		ft.list = append(ft.list, msgField{name: name, index: index, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
	}
}

func fieldIndex(ft *fieldTable, name string) (int, bool) {
	for i := range ft.list {
		if ft.list[i].name == name {
			return i, true
		}
	}
	return 0, false
}

func encodeFields(enc *msgpack.Encoder, msg any) error {
	v := reflect.ValueOf(msg)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return fmt.Errorf("%w: nil message", ErrMalformed)
		}
		v = v.Elem()
	}
	ft := fieldsOf(v.Type())
	n := 0
	for i := range ft.list {
		if !ft.list[i].omitEmpty || !v.FieldByIndex(ft.list[i].index).IsZero() {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	for i := range ft.list {
		f := &ft.list[i]
		fv := v.FieldByIndex(f.index)
		if f.omitEmpty && fv.IsZero() {
			continue
		}
		if err := enc.EncodeString(f.name); err != nil {
			return err
		}
		if err := enc.EncodeValue(fv); err != nil {
			return err
		}
	}
	return nil
}

// decodeFields fills the struct that ptr points to from a map. Keys it does not
// know are skipped, so a newer peer may add fields. A key named twice is
// decoded twice and the last value stands, as in encoding/json.
//
// msgpack/v5 panics when it decodes into an interface that already holds a
// value (vmihailenco/msgpack#339, #373): a field is zeroed before each decode,
// and a panic from deeper down (a key repeated inside a nested struct) is
// returned as an error, since the input is the peer's, not ours.
func decodeFields(dec *msgpack.Decoder, ptr any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("a value the msgpack library cannot fill: %v", p)
		}
	}()
	v := reflect.ValueOf(ptr).Elem()
	ft := fieldsOf(v.Type())
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("fields are nil, want a map")
	}
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return fmt.Errorf("field name: %w", err)
		}
		f := ft.byName[key]
		if f == nil {
			if err := dec.Skip(); err != nil {
				return err
			}
			continue
		}
		fv := v.FieldByIndex(f.index)
		fv.SetZero()
		if err := dec.DecodeValue(fv); err != nil {
			return fmt.Errorf("field %s: %w", key, err)
		}
	}
	return nil
}
