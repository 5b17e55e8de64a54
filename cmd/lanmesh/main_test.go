package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	code, out, _ := runCmd(t)
	if code != 2 {
		t.Errorf("no args: exit %d", code)
	}
	for _, c := range []string{"demo", "run", "peers", "chat", "watch"} {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("usage lacks %s:\n%s", c, out)
		}
	}
	if code, _, errOut := runCmd(t, "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	for _, c := range []string{"demo", "run", "peers", "chat", "watch", "browse", "doctor", "version", "keygen"} {
		if code, _, errOut := runCmd(t, c, "--bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
			t.Errorf("%s with a bad flag: exit %d, %q", c, code, errOut)
		}
		if code, _, errOut := runCmd(t, c, "--help"); code != 0 || !strings.Contains(errOut, "Usage: lanmesh "+c) {
			t.Errorf("%s --help: exit %d, %q", c, code, errOut)
		}
		if code, _, errOut := runCmd(t, c, "extra"); code != 2 || !strings.Contains(errOut, "unexpected arguments") {
			t.Errorf("%s with an argument: exit %d, %q", c, code, errOut)
		}
	}
	for _, c := range []string{"peers", "browse", "doctor"} {
		_, _, errOut := runCmd(t, c, "--help")
		for _, flag := range []string{"-mesh", "-codec", "-beacon-port", "-iface", "-no-mdns", "-loopback", "-wait", "-json", "-key-file"} {
			if !strings.Contains(errOut, "  "+flag+" ") && !strings.Contains(errOut, "  "+flag+"\n") {
				t.Errorf("%s --help lacks %s", c, flag)
			}
		}
	}
	for _, c := range []string{"run", "chat", "watch"} {
		_, _, errOut := runCmd(t, c, "--help")
		for _, flag := range []string{"-mesh", "-name", "-codec", "-port", "-beacon-port", "-iface", "-no-broadcast", "-no-mdns", "-peer", "-cablecar", "-verbose", "-loopback"} {
			if !strings.Contains(errOut, "  "+flag+" ") && !strings.Contains(errOut, "  "+flag+"\n") {
				t.Errorf("%s --help lacks %s", c, flag)
			}
		}
	}
}

// TestDemo runs the README's first command and checks the story's key
// lines: it must link, deliver, answer and see a leave, then end by itself.
func TestDemo(t *testing.T) {
	code, out, errOut := runCmd(t, "demo")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"all 4 nodes linked with each other, 6 links",
		"ann is linked with bob (rtt ",
		"ann queued it for 3 peers",
		`bob got a ChatLine from ann: "hello, everyone"`,
		`cat got a ChatLine from ann: "hello, everyone"`,
		`dan got a ChatLine from ann: "hello, everyone"`,
		`dan got a ChatLine from bob: "just between us"`,
		`ann replied "the answer is 42"`,
		"ann saw dan leave: mesh: peer closed the link (the peer's reason: dan has to go)",
		"cat saw dan leave: mesh: peer closed the link (the peer's reason: dan has to go)",
		"done in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "found by none") {
		t.Errorf("a peer without a source:\n%s", out)
	}
}

func TestDemoCodecs(t *testing.T) {
	code, out, errOut := runCmd(t, "demo", "--codecs")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"0b 01 61 6c 69 63 65 40 62 6f 78",
		`[\"MsgJoin\",{}]\n`,
		"json     decoded  54 bytes -> *message.Identify &{Username:alice Hostname:box}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestChatLineFrame pins ChatLine's binary frame, which examples/chat
// shares: code 0x30, then the text.
func TestChatLineFrame(t *testing.T) {
	c, err := codec.New("binary", message.Default)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := c.AppendFrame(nil, &ChatLine{Text: "hi"})
	if err != nil || string(frame) != "\x04\x30hi" {
		t.Fatalf("% x, %v", frame, err)
	}
	if (&ChatLine{}).UnmarshalBinary([]byte{0xff}) == nil {
		t.Error("a line that is not UTF-8 accepted")
	}
	long := strings.Repeat("é", 200) // 400 bytes
	parts := splitText(long)
	if len(parts) != 2 || parts[0]+parts[1] != long || len(parts[0]) > codec.MaxBinaryPayload {
		t.Errorf("split into %d parts", len(parts))
	}
	for _, p := range parts {
		if _, err := c.AppendFrame(nil, &ChatLine{Text: p}); err != nil {
			t.Error(err)
		}
	}
}

// TestVersion: "version" and "--version" print one line from the build
// info, exit 0.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runCmd(t, args...)
		if code != 0 || !strings.HasPrefix(out, "lanmesh ") || !strings.Contains(out, " go1.") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d, %q %q", args, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd(t, "keygen", "--help"); code != 0 || !strings.Contains(errOut, "Usage: lanmesh keygen [flags]") ||
		!strings.Contains(errOut, "-passphrase passphrase") {
		t.Errorf("keygen --help: exit %d, %q", code, errOut)
	}
}
