package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// lines is a player's stdout, read while it is written.
type lines struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// withPrefix returns the lines of out that start with prefix.
func withPrefix(out, prefix string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

// checkFinals checks that every bot printed one final line for round 1,
// the same one, naming every bot and counting every coin.
func checkFinals(t *testing.T, outs map[string]string) {
	t.Helper()
	want := ""
	for name, out := range outs {
		f := withPrefix(out, "final 1 ")
		if len(f) != 1 {
			t.Errorf("%s printed %d finals of round 1:\n%s", name, len(f), out)
			continue
		}
		if want == "" {
			want = f[0]
		}
		if f[0] != want {
			t.Errorf("%s says %q, another %q", name, f[0], want)
		}
		if !strings.Contains(out, "\ndone\n") {
			t.Errorf("%s did not finish:\n%s", name, out)
		}
	}
	total := 0
	for name := range outs {
		var n int
		i := strings.Index(want, " "+name+"=")
		if i < 0 {
			t.Errorf("%q does not name %s", want, name)
			continue
		}
		fmt.Sscanf(want[i+len(name)+2:], "%d", &n)
		total += n
	}
	if total != coinsPerRound {
		t.Errorf("%q counts %d coins, want %d", want, total, coinsPerRound)
	}
	t.Logf("agreed: %s", want)
	for name, out := range outs {
		t.Logf("%s:\n%s", name, out)
	}
}

// TestBotsOnLoopback: two bots in this process, on loopback, play a round
// and print the same final scores.
func TestBotsOnLoopback(t *testing.T) {
	leaktest.Check(t)
	port := fmt.Sprint(freeUDPPort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outs := map[string]*lines{"ann": {}, "bob": {}}
	var wg sync.WaitGroup
	for name, out := range outs {
		wg.Go(func() {
			var errOut bytes.Buffer
			code := run(ctx, []string{"-bot", "-loopback", "-beacon-port", port, "-mesh", "game-test",
				"-name", name, "-tick", "10ms", "-pause", "300ms", "-limit", "50s"}, out, &errOut)
			if code != 0 {
				t.Errorf("%s: exit %d: %s\n%s", name, code, errOut.String(), out.String())
			}
		})
	}
	wg.Wait()
	got := map[string]string{}
	for name, out := range outs {
		got[name] = out.String()
	}
	checkFinals(t, got)
	for name, other := range map[string]string{"ann": "bob", "bob": "ann"} {
		if !strings.Contains(got[other], "\njoin "+name+"\n") {
			t.Errorf("%s never saw %s join:\n%s", other, name, got[other])
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"-tick", "0"}, {"-rounds", "0"}, {"-wait", "-1"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2: %s", args, code, errOut.String())
		}
	}
}

// freeUDPPort returns a UDP port on loopback that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
