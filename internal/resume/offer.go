package resume

import "fmt"

// Extension items: what a handshake frame carries beyond the fields of
// SPEC.md section 6, as items tag (1) || length (1) || value. A receiver
// skips tags it does not know. They go where an older receiver ignores
// them: in the unkeyed Accept's body, and in a keyed Hello's suite data.
const (
	// TagResume: the sender speaks resume, up to the version in the first
	// value byte; an unkeyed Accept's item adds the sender's Share.
	TagResume byte = 1
)

// Offer is a side's resume item: the highest version it speaks and, on an
// unkeyed link, its fresh X25519 Share.
type Offer struct {
	Version  byte
	Share    Share
	HasShare bool
}

// AppendOffer appends o as an extension item.
func AppendOffer(dst []byte, o Offer) []byte {
	if o.HasShare {
		dst = append(dst, TagResume, 1+32, o.Version)
		return append(dst, o.Share[:]...)
	}
	return append(dst, TagResume, 1, o.Version)
}

// ParseOffer finds the resume item in ext, the extension items of an
// unkeyed Accept body (keyed false: the item must carry a Share) or of a
// keyed Hello's suite data (keyed true: it must not). found is false when
// there is none (the peer does not speak resume). Items that overrun ext,
// a resume item twice, of the wrong length, or of version 0 are
// ErrMalformed.
func ParseOffer(ext []byte, keyed bool) (o Offer, found bool, err error) {
	want := 1 + 32
	if keyed {
		want = 1
	}
	for len(ext) > 0 {
		if len(ext) < 2 || len(ext) < 2+int(ext[1]) {
			return Offer{}, false, fmt.Errorf("%w: an extension item overruns the frame", ErrMalformed)
		}
		tag, val := ext[0], ext[2:2+int(ext[1])]
		ext = ext[2+len(val):]
		if tag != TagResume {
			continue
		}
		switch {
		case found:
			return Offer{}, false, fmt.Errorf("%w: two resume items", ErrMalformed)
		case len(val) != want:
			return Offer{}, false, fmt.Errorf("%w: a resume item of %d bytes, want %d", ErrMalformed, len(val), want)
		case val[0] == 0:
			return Offer{}, false, fmt.Errorf("%w: resume version 0", ErrMalformed)
		}
		found = true
		o.Version = val[0]
		if !keyed {
			o.HasShare = true
			copy(o.Share[:], val[1:])
		}
	}
	return o, found, nil
}
