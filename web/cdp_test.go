package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// browser drives a headless Chromium over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on its fd 3, answers on its fd 4, each
// a JSON text ended by a NUL byte), so that no websocket is needed.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       *os.File
	session string
	done    chan struct{} // closed when the reader ends

	// mu guards next and pending.
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpAnswer
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// chromium finds the browser, installing Debian's package if it is missing
// and apt-get is there (as CI does); it skips the test otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LANMESH_NO_INSTALL") == "" && os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			t.Log("chromium is missing: installing Debian's package")
			cmd := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("apt-get: %v\n%s", err, out)
			} else if p, err := exec.LookPath("chromium"); err == nil {
				return p
			}
		}
	}
	t.Skip("no chromium: install Debian's chromium package (apt-get install chromium) to run the browser test")
	return ""
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	toChrome, ourW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ourR, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-extensions", "--hide-scrollbars", "--mute-audio", "--user-data-dir="+t.TempDir(),
		"--window-size=1280,1000", "about:blank")
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fds 3 and 4
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Skipf("chromium does not start: %v", err)
	}
	toChrome.Close()
	fromChrome.Close()
	b := &browser{t: t, cmd: cmd, w: ourW, done: make(chan struct{}), pending: map[int]chan cdpAnswer{}}
	go b.read(ourR)
	t.Cleanup(func() {
		b.call("Browser.close", nil)
		ourW.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		ourR.Close()
		<-b.done
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})
	return b
}

func (b *browser) read(r *os.File) {
	defer close(b.done)
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpAnswer
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue // an event: not used
		}
		b.mu.Lock()
		ch := b.pending[m.ID]
		delete(b.pending, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpAnswer
		}
	}
}

// call sends a command (to the page's session once attached) and returns
// its result.
func (b *browser) call(method string, params any) (json.RawMessage, error) {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpAnswer, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if b.session != "" && method != "Browser.close" {
		msg["sessionId"] = b.session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return nil, err
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: chromium went away", method)
		}
		if a.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, a.Error.Message)
		}
		return a.Result, nil
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("%s: no answer in 20 s", method)
	}
}

func (b *browser) must(method string, params any) json.RawMessage {
	b.t.Helper()
	r, err := b.call(method, params)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// open makes a page at url and attaches to it.
func (b *browser) open(url string, width, height int) {
	b.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	json.Unmarshal(b.must("Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	json.Unmarshal(b.must("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &att)
	b.session = att.SessionID
	b.must("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false})
	b.must("Page.navigate", map[string]any{"url": url})
}

// eval evaluates a JavaScript expression in the page and decodes its value
// into v.
func (b *browser) eval(expr string, v any) error {
	r, err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	if err != nil {
		return err
	}
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(r, &res); err != nil {
		return err
	}
	if res.Exception != nil {
		return fmt.Errorf("%s: %s", expr, res.Exception.Text)
	}
	return json.Unmarshal(res.Result.Value, v)
}

// waitFor polls a JavaScript condition until it is true, for up to
// timeout, and returns how long it took.
func (b *browser) waitFor(ctx context.Context, timeout time.Duration, what, expr string) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		var ok bool
		err := b.eval(expr, &ok)
		if err == nil && ok {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("timed out after %v waiting for %s (last error: %v)", timeout, what, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// screenshot saves the whole page, width wide, as a PNG.
func (b *browser) screenshot(path string, width int) error {
	var height int
	if err := b.eval("document.documentElement.scrollHeight", &height); err != nil {
		return err
	}
	if _, err := b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}); err != nil {
		return err
	}
	r, err := b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
	if err != nil {
		return err
	}
	var shot struct {
		Data []byte `json:"data"` // base64 in JSON: []byte decodes it
	}
	if err := json.Unmarshal(r, &shot); err != nil {
		return err
	}
	return os.WriteFile(path, shot.Data, 0o644)
}
