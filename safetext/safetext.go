// Package safetext makes text from the network safe to show to a person on a
// terminal. Every name, reason, chat line and message field a peer sends is
// untrusted: an escape sequence can move the cursor, rewrite a line that
// another peer wrote, ring the bell or change the terminal's title, and a
// bidirectional override can make "abc" read as "cba". Pass such text through
// Line (for one line of output) or Text (where newlines may stay) before it
// reaches a terminal. Machine output (JSON) needs no such step: its encoder
// escapes what it must.
//
//	fmt.Printf("%s: %s\n", safetext.Line(m.FromName), safetext.Line(chat.Text))
package safetext

import (
	"strings"
	"unicode/utf8"
)

// Line returns s with everything a terminal would act on made visible: C0 and
// C1 control characters (newline and tab included) and DEL become \xNN or
// \u00NN escapes, bidirectional controls and other invisible format
// characters become \uNNNN, and bytes that are not UTF-8 become U+FFFD. Text
// with none of these is returned as it is, without allocating.
func Line(s string) string { return clean(s, false) }

// Text is Line but keeps newlines (and tabs), for text shown as a block.
func Text(s string) string { return clean(s, true) }

func clean(s string, keepLines bool) string {
	if safe(s, keepLines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		case unsafeRune(r):
			b.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				b.WriteByte(hex[(r>>shift)&0xf])
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

const hex = "0123456789abcdef"

// safe reports whether s needs no change.
func safe(s string, keepLines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && !(keepLines && (c == '\n' || c == '\t'))) || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafeRune(r) {
			return false
		}
		i += size
	}
	return true
}

// unsafeRune reports the non-ASCII runes a terminal acts on or that hide or
// reorder text: C1 controls, bidirectional marks, embeddings, overrides and
// isolates, zero-width characters, line and paragraph separators, and the
// byte-order mark.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls (CSI is 0x9b)
		return true
	case r == 0x061c: // Arabic letter mark
		return true
	case r >= 0x200b && r <= 0x200f: // zero-width space/joiners, LRM, RLM
		return true
	case r >= 0x2028 && r <= 0x202e: // line/paragraph separators, LRE..RLO
		return true
	case r >= 0x2060 && r <= 0x2069: // word joiner, invisible operators, LRI..PDI
		return true
	case r == 0xfeff:
		return true
	}
	return false
}
