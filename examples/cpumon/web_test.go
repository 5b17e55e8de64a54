package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// TestWebFlag: with -web the monitor serves the page, whose charts hold
// each machine's figures, and stops serving when it stops.
func TestWebFlag(t *testing.T) {
	leaktest.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	port := fmt.Sprint(freeUDPPort(t))
	go func() {
		done <- run(ctx, []string{"-loopback", "-beacon-port", port, "-mesh", "cpumon-web-" + port,
			"-interval", "50ms", "-plain", "-name", "charted", "-web", "127.0.0.1:0"}, out, errOut)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the monitor did not stop")
		}
	}()
	re := regexp.MustCompile(`the page is at (http://\S+/)`)
	deadline := time.Now().Add(10 * time.Second)
	var url string
	for url == "" {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address: %q", errOut.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for {
		res, err := hc.Get(url + "api/state")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var s struct {
			Charts []struct {
				Name    string
				Self    bool
				Figures []struct {
					Name   string
					Values []float64
				}
			}
		}
		json.Unmarshal(b, &s)
		if len(s.Charts) == 1 && s.Charts[0].Name == "charted" && s.Charts[0].Self && len(s.Charts[0].Figures) >= 4 &&
			s.Charts[0].Figures[0].Name == "cpu" && len(s.Charts[0].Figures[0].Values) >= 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
