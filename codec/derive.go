package codec

import (
	"encoding"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"unsafe"
)

// Derived binary forms: a struct of fixed-size fields and short strings gets
// a compact binary payload with no code from its author. DeriveBinary walks
// the type once and builds a plan (a list of operations at field offsets);
// Append and Unmarshal then run the plan over the value's memory, without
// reflection per call. SPEC.md (section 2, derived payloads) has the layout byte by byte.

// BinaryForm is the derived binary payload of one struct type. It is
// immutable and safe for concurrent use.
type BinaryForm struct {
	typ, ptr reflect.Type
	ops      []op
	fixed    int  // bytes of the fixed fields, and one length byte per variable one
	variable bool // has strings, byte slices or hand-written fields
	checked  bool // has fields whose bytes can be wrong: bools, ints (on 32-bit platforms)
	custom   bool // has hand-written fields
}

type opKind uint8

const (
	opBool opKind = iota
	opU8
	opU16
	opU32
	opU64
	opInt  // int, uint: 8 bytes on the wire whatever the platform's size
	opUint //
	opBytesArray
	opArray
	opString
	opSlice // []byte
	opCustom
)

type op struct {
	kind opKind
	off  uintptr
	n    int          // opBytesArray, opArray: the length
	size uintptr      // opArray: the element's size
	sub  []op         // opArray: the element's plan, offsets from the element
	typ  reflect.Type // opCustom: the field's type
	path string       // for errors: "Pos.Name"
}

// The type word of an interface is where the eface layout puts it: the
// runtime's layout of an empty interface, stable since Go 1.
type eface struct {
	typ, data unsafe.Pointer
}

func dataOf(v *any) unsafe.Pointer { return (*eface)(unsafe.Pointer(v)).data }

var (
	appenderType    = reflect.TypeFor[encoding.BinaryAppender]()
	unmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	forms           sync.Map // reflect.Type -> *BinaryForm or error
)

// HandWritten reports whether struct type t (or *t) has its own AppendBinary
// and *t its own UnmarshalBinary. Where it does, the binary codec uses them
// and never a derived form.
func HandWritten(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return (t.Implements(appenderType) || pt.Implements(appenderType)) && pt.Implements(unmarshalerType)
}

// DeriveBinary returns the derived binary form of struct type t, building it
// on the first call for t (later calls return the same form). t's own
// AppendBinary and UnmarshalBinary, if any, are ignored here; a field whose
// type has both is encoded by them.
//
// Carried: exported fields (and embedded structs), in declaration order,
// except those tagged `lanmesh:"-"` (or "-" in a msgpack or json tag, as the
// other codecs skip them). Each must be a bool, integer, float or complex
// number, a fixed array or a struct of such, a string or []byte (at most
// 255 bytes each), or a type with AppendBinary and UnmarshalBinary. A type
// that cannot be derived is refused with an error wrapping ErrNoBinaryForm
// that names the field and the fix.
func DeriveBinary(t reflect.Type) (*BinaryForm, error) {
	if v, ok := forms.Load(t); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*BinaryForm), nil
	}
	f, err := derive(t)
	if err != nil {
		forms.LoadOrStore(t, err)
		return nil, err
	}
	v, _ := forms.LoadOrStore(t, f)
	return v.(*BinaryForm), nil
}

func derive(t reflect.Type) (*BinaryForm, error) {
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %v is not a struct type", ErrNoBinaryForm, t)
	}
	d := &deriver{top: t}
	ops, err := d.plan(t, 0, t.Name(), 0)
	if err != nil {
		return nil, err
	}
	if d.fixed > MaxBinaryPayload {
		return nil, fmt.Errorf("%w: %v needs at least %d bytes, a binary frame holds %d: "+
			"make it smaller, or use the msgpack codec", ErrNoBinaryForm, t, d.fixed, MaxBinaryPayload)
	}
	f := &BinaryForm{typ: t, ptr: reflect.PointerTo(t), ops: ops, fixed: d.fixed, variable: d.variable}
	f.checked, f.custom = scanKinds(ops)
	return f, nil
}

// scanKinds reports whether ops hold a field whose bytes need checking, and
// one with a hand-written form.
func scanKinds(ops []op) (checked, custom bool) {
	for i := range ops {
		switch ops[i].kind {
		case opBool:
			checked = true
		case opInt:
			checked = checked || strconv.IntSize < 64
		case opCustom:
			custom = true
		case opArray:
			c, h := scanKinds(ops[i].sub)
			checked, custom = checked || c, custom || h
		}
	}
	return checked, custom
}

type deriver struct {
	top      reflect.Type
	fixed    int
	variable bool
}

func (d *deriver) refuse(path, what string) error {
	name := d.top.Name()
	if name == "" {
		name = d.top.String()
	}
	return fmt.Errorf("%w: %s is %s: give %s AppendBinary/UnmarshalBinary, or use the msgpack codec",
		ErrNoBinaryForm, path, what, name)
}

// plan appends the operations of struct t at offset base.
func (d *deriver) plan(t reflect.Type, base uintptr, path string, depth int) ([]op, error) {
	if depth > 16 {
		return nil, d.refuse(path, "nested more than 16 deep")
	}
	var ops []op
	for i := range t.NumField() {
		sf := t.Field(i)
		if skipField(sf) {
			continue
		}
		fops, err := d.field(sf.Type, base+sf.Offset, path+"."+sf.Name, depth)
		if err != nil {
			return nil, err
		}
		ops = append(ops, fops...)
	}
	return ops, nil
}

func skipField(sf reflect.StructField) bool {
	for _, key := range []string{"lanmesh", "msgpack", "json"} {
		if tag, ok := sf.Tag.Lookup(key); ok {
			if tag == "-" {
				return true
			}
			if key == "lanmesh" {
				break // a lanmesh tag overrides the others
			}
		}
	}
	return !sf.IsExported() && !(sf.Anonymous && sf.Type.Kind() == reflect.Struct)
}

// field returns the operations of one value of type t at offset off.
func (d *deriver) field(t reflect.Type, off uintptr, path string, depth int) ([]op, error) {
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && HandWritten(t) {
		d.fixed++ // its length byte
		d.variable = true
		return []op{{kind: opCustom, off: off, typ: t, path: path}}, nil
	}
	fixed := func(k opKind, n int) ([]op, error) {
		d.fixed += n
		return []op{{kind: k, off: off, path: path}}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return fixed(opBool, 1)
	case reflect.Int8, reflect.Uint8:
		return fixed(opU8, 1)
	case reflect.Int16, reflect.Uint16:
		return fixed(opU16, 2)
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return fixed(opU32, 4)
	case reflect.Int64, reflect.Uint64, reflect.Float64:
		return fixed(opU64, 8)
	case reflect.Int:
		return fixed(opInt, 8)
	case reflect.Uint:
		return fixed(opUint, 8)
	case reflect.Complex64:
		return []op{{kind: opU32, off: off, path: path}, {kind: opU32, off: off + 4, path: path}}, d.add(8)
	case reflect.Complex128:
		return []op{{kind: opU64, off: off, path: path}, {kind: opU64, off: off + 8, path: path}}, d.add(16)
	case reflect.String:
		d.variable = true
		return fixed(opString, 1)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !HandWritten(t.Elem()) {
			d.variable = true
			return fixed(opSlice, 1)
		}
		return nil, d.refuse(path, "a slice of "+t.Elem().String()+" (only []byte and string have a derived form; use a fixed array)")
	case reflect.Array:
		if t.Len() == 0 {
			return nil, nil
		}
		if t.Elem().Kind() == reflect.Uint8 && !HandWritten(t.Elem()) {
			d.fixed += t.Len()
			return []op{{kind: opBytesArray, off: off, n: t.Len(), path: path}}, nil
		}
		before := d.fixed
		sub, err := d.field(t.Elem(), 0, path+"[]", depth+1)
		if err != nil {
			return nil, err
		}
		per := d.fixed - before
		if per*t.Len() > MaxBinaryPayload {
			return nil, d.refuse(path, fmt.Sprintf("an array of %d elements of %d bytes, more than a binary frame holds", t.Len(), per))
		}
		d.fixed = before + per*t.Len()
		return []op{{kind: opArray, off: off, n: t.Len(), size: t.Elem().Size(), sub: sub, path: path}}, nil
	case reflect.Struct:
		return d.plan(t, off, path, depth+1)
	case reflect.Map:
		return nil, d.refuse(path, "a map")
	case reflect.Pointer:
		return nil, d.refuse(path, "a pointer")
	case reflect.Interface:
		return nil, d.refuse(path, "an interface")
	}
	return nil, d.refuse(path, "a "+t.Kind().String())
}

func (d *deriver) add(n int) error { d.fixed += n; return nil }

// Type returns the struct type of the form.
func (f *BinaryForm) Type() reflect.Type { return f.typ }

// Fixed reports whether every payload of the form has the same size (no
// strings, byte slices or hand-written fields), which Size then gives.
func (f *BinaryForm) Fixed() bool { return !f.variable }

// Size is the payload's size when Fixed, or its smallest size (every string
// empty) otherwise.
func (f *BinaryForm) Size() int { return f.fixed }

// pointer returns the address of the struct in v, a *T or a T.
func (f *BinaryForm) pointer(v *any, write bool) (unsafe.Pointer, error) {
	switch reflect.TypeOf(*v) {
	case f.ptr:
		if p := dataOf(v); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("%w: nil *%v", ErrMalformed, f.typ)
	case f.typ:
		if !write {
			return dataOf(v), nil
		}
	}
	want := "*" + f.typ.String()
	if !write {
		want = f.typ.String() + " or " + want
	}
	return nil, fmt.Errorf("codec: derived form of %v given a %T (want %s)", f.typ, *v, want)
}

// Append appends v's payload (v is a *T or a T) to dst. It does not
// allocate when dst has room. A string or byte slice over 255 bytes, or a
// payload over MaxBinaryPayload, is refused (ErrFrameTooLarge) and dst is
// returned with its original length.
func (f *BinaryForm) Append(dst []byte, v any) ([]byte, error) {
	p, err := f.pointer(&v, false)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst, err = appendOps(dst, f.ops, p)
	if err != nil {
		return dst[:start], err
	}
	if n := len(dst) - start; n > MaxBinaryPayload {
		return dst[:start], fmt.Errorf("%w: %v needs %d bytes, a binary payload holds %d", ErrFrameTooLarge, f.typ, n, MaxBinaryPayload)
	}
	return dst, nil
}

func appendOps(dst []byte, ops []op, p unsafe.Pointer) ([]byte, error) {
	for i := range ops {
		o := &ops[i]
		q := unsafe.Add(p, o.off)
		switch o.kind {
		case opBool:
			b := byte(0)
			if *(*bool)(q) {
				b = 1
			}
			dst = append(dst, b)
		case opU8:
			dst = append(dst, *(*uint8)(q))
		case opU16:
			dst = binary.BigEndian.AppendUint16(dst, *(*uint16)(q))
		case opU32:
			dst = binary.BigEndian.AppendUint32(dst, *(*uint32)(q))
		case opU64:
			dst = binary.BigEndian.AppendUint64(dst, *(*uint64)(q))
		case opInt:
			dst = binary.BigEndian.AppendUint64(dst, uint64(int64(*(*int)(q))))
		case opUint:
			dst = binary.BigEndian.AppendUint64(dst, uint64(*(*uint)(q)))
		case opBytesArray:
			dst = append(dst, unsafe.Slice((*byte)(q), o.n)...)
		case opArray:
			for k := 0; k < o.n; k++ {
				var err error
				if dst, err = appendOps(dst, o.sub, unsafe.Add(q, uintptr(k)*o.size)); err != nil {
					return dst, err
				}
			}
		case opString:
			s := *(*string)(q)
			if len(s) > 255 {
				return dst, fmt.Errorf("%w: %s is %d bytes, a derived string holds 255", ErrFrameTooLarge, o.path, len(s))
			}
			dst = append(append(dst, byte(len(s))), s...)
		case opSlice:
			s := *(*[]byte)(q)
			if len(s) > 255 {
				return dst, fmt.Errorf("%w: %s is %d bytes, a derived byte slice holds 255", ErrFrameTooLarge, o.path, len(s))
			}
			dst = append(append(dst, byte(len(s))), s...)
		case opCustom:
			at := len(dst)
			m := reflect.NewAt(o.typ, q).Interface().(encoding.BinaryAppender)
			dst = append(dst, 0)
			var err error
			if dst, err = m.AppendBinary(dst); err != nil {
				return dst, fmt.Errorf("codec: encoding %s: %w", o.path, err)
			}
			n := len(dst) - at - 1
			if n > 255 {
				return dst, fmt.Errorf("%w: %s is %d bytes, a derived field holds 255", ErrFrameTooLarge, o.path, n)
			}
			dst[at] = byte(n)
		}
	}
	return dst, nil
}

// Unmarshal decodes a payload into v, a *T. Nothing of v changes unless the
// whole payload is valid: exactly the fields' bytes, no more, bools 0 or 1,
// lengths within the payload. It does not allocate for a Fixed form; else it
// allocates once, one block that every string and byte slice of v shares
// (and a hand-written field's UnmarshalBinary may allocate on its own).
// Errors wrap ErrMalformed.
func (f *BinaryForm) Unmarshal(data []byte, v any) error {
	p, err := f.pointer(&v, true)
	if err != nil {
		return err
	}
	if !f.variable {
		if len(data) != f.fixed {
			return fmt.Errorf("%w: %v is %d bytes, got %d", ErrMalformed, f.typ, f.fixed, len(data))
		}
		if f.checked {
			if err := checkBools(data, f.ops); err != nil {
				return err
			}
		}
		decodeOps(data, f.ops, p, nil)
		return nil
	}
	if len(data) > MaxBinaryPayload {
		// No frame carries it, and it would not encode again.
		return fmt.Errorf("%w: %v: %d bytes, a binary payload holds at most %d", ErrMalformed, f.typ, len(data), MaxBinaryPayload)
	}
	// A first pass checks everything and sums the bytes of the strings and
	// byte slices, so that one block holds them all and v is changed only
	// by a valid payload.
	total, rest, err := scanOps(data, f.ops, 0)
	if err != nil {
		return fmt.Errorf("%w: %v: %w", ErrMalformed, f.typ, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %v: %d bytes after the last field", ErrMalformed, f.typ, len(rest))
	}
	// Hand-written fields decode into a scratch copy first, so that an
	// error from one leaves v untouched.
	var block []byte
	if total > 0 {
		block = make([]byte, 0, total)
	}
	if f.custom {
		if err := checkCustom(data, f.ops); err != nil {
			return fmt.Errorf("%w: %v: %w", ErrMalformed, f.typ, err)
		}
	}
	decodeOps(data, f.ops, p, &block)
	return nil
}

// checkBools is scanOps for a fixed form: the size is known; only bools can
// be wrong.
func checkBools(data []byte, ops []op) error {
	_, _, err := scanOps(data, ops, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// scanOps walks data as ops would decode it, checking it, and returns the
// bytes its strings and byte slices need, and what is left of data.
func scanOps(data []byte, ops []op, total int) (int, []byte, error) {
	short := func(o *op) error { return fmt.Errorf("the payload ends inside %s", o.path) }
	for i := range ops {
		o := &ops[i]
		var n int
		switch o.kind {
		case opBool:
			if len(data) >= 1 && data[0] > 1 {
				return 0, nil, fmt.Errorf("%s: bool byte %d", o.path, data[0])
			}
			n = 1
		case opU8:
			n = 1
		case opU16:
			n = 2
		case opU32:
			n = 4
		case opU64, opUint:
			n = 8
		case opInt:
			if len(data) >= 8 {
				x := int64(binary.BigEndian.Uint64(data))
				if int64(int(x)) != x {
					return 0, nil, fmt.Errorf("%s: %d does not fit an int here", o.path, x)
				}
			}
			n = 8
		case opBytesArray:
			n = o.n
		case opArray:
			for k := 0; k < o.n; k++ {
				var err error
				if total, data, err = scanOps(data, o.sub, total); err != nil {
					return 0, nil, err
				}
			}
			continue
		case opString, opSlice, opCustom:
			if len(data) < 1 {
				return 0, nil, short(o)
			}
			n = 1 + int(data[0])
			if o.kind != opCustom {
				total += int(data[0])
			}
		}
		if len(data) < n {
			return 0, nil, short(o)
		}
		data = data[n:]
	}
	return total, data, nil
}

// checkCustom runs each hand-written field's UnmarshalBinary on a scratch
// value, so that a refusal is known before v changes.
func checkCustom(data []byte, ops []op) error {
	_, err := walkCustom(data, ops, func(o *op, b []byte) error {
		return reflect.New(o.typ).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
	})
	return err
}

func walkCustom(data []byte, ops []op, fn func(o *op, b []byte) error) ([]byte, error) {
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opBool, opU8:
			data = data[1:]
		case opU16:
			data = data[2:]
		case opU32:
			data = data[4:]
		case opU64, opInt, opUint:
			data = data[8:]
		case opBytesArray:
			data = data[o.n:]
		case opArray:
			for k := 0; k < o.n; k++ {
				var err error
				if data, err = walkCustom(data, o.sub, fn); err != nil {
					return nil, err
				}
			}
		case opString, opSlice:
			data = data[1+int(data[0]):]
		case opCustom:
			n := int(data[0])
			if err := fn(o, data[1:1+n]); err != nil {
				return nil, fmt.Errorf("%s: %w", o.path, err)
			}
			data = data[1+n:]
		}
	}
	return data, nil
}

// decodeOps writes the fields of a checked payload at p, strings and byte
// slices into *block. It returns what is left of data.
func decodeOps(data []byte, ops []op, p unsafe.Pointer, block *[]byte) []byte {
	for i := range ops {
		o := &ops[i]
		q := unsafe.Add(p, o.off)
		switch o.kind {
		case opBool:
			*(*bool)(q) = data[0] == 1
			data = data[1:]
		case opU8:
			*(*uint8)(q) = data[0]
			data = data[1:]
		case opU16:
			*(*uint16)(q) = binary.BigEndian.Uint16(data)
			data = data[2:]
		case opU32:
			*(*uint32)(q) = binary.BigEndian.Uint32(data)
			data = data[4:]
		case opU64:
			*(*uint64)(q) = binary.BigEndian.Uint64(data)
			data = data[8:]
		case opInt:
			*(*int)(q) = int(int64(binary.BigEndian.Uint64(data)))
			data = data[8:]
		case opUint:
			*(*uint)(q) = uint(binary.BigEndian.Uint64(data))
			data = data[8:]
		case opBytesArray:
			copy(unsafe.Slice((*byte)(q), o.n), data[:o.n])
			data = data[o.n:]
		case opArray:
			for k := 0; k < o.n; k++ {
				data = decodeOps(data, o.sub, unsafe.Add(q, uintptr(k)*o.size), block)
			}
		case opString, opSlice:
			n := int(data[0])
			var s []byte
			if n > 0 {
				at := len(*block)
				*block = append(*block, data[1:1+n]...)
				s = (*block)[at : at+n : at+n]
			}
			if o.kind == opString {
				*(*string)(q) = unsafe.String(unsafe.SliceData(s), n)
			} else {
				*(*[]byte)(q) = s
			}
			data = data[1+n:]
		case opCustom:
			n := int(data[0])
			// Checked by checkCustom already: the same bytes decode again.
			_ = reflect.NewAt(o.typ, q).Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(data[1 : 1+n])
			data = data[1+n:]
		}
	}
	return data
}
