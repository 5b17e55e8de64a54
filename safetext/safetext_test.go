package safetext

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	for _, c := range []struct{ in, line, text string }{
		{"alice", "alice", "alice"},
		{"naïve 日本", "naïve 日本", "naïve 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`, `a\x1b[2Jb`},
		{"x\rhonest-a: hi", `x\x0dhonest-a: hi`, `x\x0dhonest-a: hi`},
		{"bell\a", `bell\x07`, `bell\x07`},
		{"two\nlines\tt", `two\x0alines\x09t`, "two\nlines\tt"},
		{"del\x7f", `del\x7f`, `del\x7f`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`, `evil\u202etxt.exe`},
		{"iso\u2066x\u2069", `iso\u2066x\u2069`, `iso\u2066x\u2069`},
		{"c1\u009b31m", `c1\u009b31m`, `c1\u009b31m`},
		{"zw\u200bj", `zw\u200bj`, `zw\u200bj`},
		{"bad\xff\xfe", "bad\uFFFD\uFFFD", "bad\uFFFD\uFFFD"},
		{"", "", ""},
	} {
		if got := Line(c.in); got != c.line {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.line)
		}
		if got := Text(c.in); got != c.text {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.text)
		}
	}
}

func TestLineCleanAllocatesNothing(t *testing.T) {
	s := strings.Repeat("plain text, ünïcode ", 10)
	if n := testing.AllocsPerRun(100, func() { _ = Line(s) }); n != 0 {
		t.Errorf("Line of clean text allocates %v times", n)
	}
}

func FuzzLine(f *testing.F) {
	for _, s := range []string{"a\x1b[0m", "\u202e", "\xff", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Line(s), Text(s)} {
			for _, r := range out {
				if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || unsafeRune(r) {
					t.Fatalf("%q left %U in %q", s, r, out)
				}
			}
		}
		if strings.ContainsAny(Line(s), "\n\t") {
			t.Fatalf("Line(%q) kept a newline or tab", s)
		}
		if Line(Line(s)) != Line(s) {
			t.Fatalf("Line is not idempotent on %q", s)
		}
	})
}
