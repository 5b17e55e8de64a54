package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lanmesh/lanmesh/meshkey"
)

func runIn(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKeygen(t *testing.T) {
	code, out, _ := runIn(t, "keygen")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := meshkey.Parse(strings.TrimSpace(out)); err != nil {
		t.Fatalf("keygen printed %q: %v", out, err)
	}
	_, again, _ := runIn(t, "keygen")
	if again == out {
		t.Error("two keygen runs printed the same key")
	}
	// A passphrase gives the same key for the same mesh, and warns.
	_, p1, warn := runIn(t, "keygen", "--passphrase", "correct horse", "--mesh", "m")
	_, p2, _ := runIn(t, "keygen", "--passphrase", "correct horse", "--mesh", "m")
	_, p3, _ := runIn(t, "keygen", "--passphrase", "correct horse", "--mesh", "other")
	if p1 != p2 || p1 == p3 || !strings.Contains(warn, "offline") {
		t.Errorf("passphrase keys %q %q %q, warning %q", p1, p2, p3, warn)
	}
}

func TestKeyFlags(t *testing.T) {
	_, key, _ := runIn(t, "keygen")
	file := filepath.Join(t.TempDir(), "mesh.key")
	if err := os.WriteFile(file, []byte("# the mesh key\n"+key), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", "nonsense"}, "not a mesh key"},
		{[]string{"--key", strings.TrimSpace(key), "--key-file", file}, "not both"},
		{[]string{"--key-file", filepath.Join(t.TempDir(), "missing")}, "missing"},
	} {
		code, _, errOut := runIn(t, append([]string{"peers", "--loopback", "--wait", "1ms"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, %q", tt.args, code, errOut)
		}
	}
	// A good key file is accepted: the command runs (and, alone, finds no peer).
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	code, _, errOut := runIn(t, "peers", "--loopback", "--beacon-port", strconv.Itoa(port), "--wait", "1ms", "--key-file", file)
	if code != 1 || strings.Contains(errOut, "key") {
		t.Errorf("with a key file: exit %d, %q", code, errOut)
	}
}
