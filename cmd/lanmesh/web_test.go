package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// webBuffer is a command's output, read while it is written.
type webBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *webBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *webBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWebCommand runs "lanmesh web" and "lanmesh run" on loopback: the
// page's address is printed, /api/peers shows the other node, and Ctrl-C
// ends the command with its server.
func TestWebCommand(t *testing.T) {
	leaktest.Check(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
	c.Close()
	common := []string{"--loopback", "--beacon-port", port, "--mesh", "webcmd-" + port, "--interval", "200ms"}
	type proc struct {
		out, err *webBuffer
		cancel   func()
		done     chan int
	}
	start := func(args ...string) *proc {
		ctx, cancel := context.WithCancel(context.Background())
		p := &proc{out: &webBuffer{}, err: &webBuffer{}, cancel: cancel, done: make(chan int, 1)}
		go func() { p.done <- run(ctx, append(args, common...), strings.NewReader(""), p.out, p.err) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%v did not end", args)
			}
		})
		return p
	}
	w := start("web", "--name", "viewer", "--http", "127.0.0.1:0")
	start("run", "--name", "other")
	urlRE := regexp.MustCompile(`the page is at (http://127\.0\.0\.1:[0-9]+/)`)
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if m := urlRE.FindStringSubmatch(w.out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address printed: %q %q", w.out.String(), w.err.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if w.err.String() != "" {
		t.Errorf("stderr: %q", w.err.String())
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for {
		res, err := hc.Get(url + "api/peers")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var peers []struct{ Name, State string }
		json.Unmarshal(b, &peers)
		if len(peers) == 1 && peers[0].Name == "other" && peers[0].State == "linked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peers: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.cancel()
	select {
	case code := <-w.done:
		w.done <- code // for the cleanup
		if code != 0 {
			t.Errorf("exit %d: %s", code, w.err.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("web did not end")
	}
	if res, err := hc.Get(url); err == nil {
		res.Body.Close()
		t.Error("the page is still served after the command ended")
	}
}

func TestWebBeyondLoopback(t *testing.T) {
	for addr, warn := range map[string]string{
		"127.0.0.1:8280":      "",
		"localhost:8280":      "",
		"[::1]:8280":          "",
		":8280":               "on every interface",
		"0.0.0.0:8280":        "on every interface",
		"192.168.1.10:8280":   "anyone who can reach 192.168.1.10",
		"[fe80::1%eth0]:8280": "beyond this machine",
	} {
		got := beyondLoopback(addr)
		if (warn == "") != (got == "") || !strings.Contains(got, warn) {
			t.Errorf("%s: %q, want %q", addr, got, warn)
		}
	}
	code, _, errOut := runCmd(t, "web", "--help")
	if code != 0 || !strings.Contains(errOut, "-http address") || !strings.Contains(errOut, "127.0.0.1:8280") {
		t.Errorf("--help: %d %s", code, errOut)
	}
}
