package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	if code, out, _ := runCmd(t); code != 2 || !strings.Contains(out, "demo") {
		t.Errorf("no args: exit %d, %q", code, out)
	}
	if code, _, errOut := runCmd(t, "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "demo", "--bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Errorf("bad flag: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "demo", "--help"); code != 0 || !strings.Contains(errOut, "Usage: lanmesh demo") {
		t.Errorf("--help: exit %d, %q", code, errOut)
	}
}

func TestDemoCodecs(t *testing.T) {
	code, out, errOut := runCmd(t, "demo")
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
