package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lanmesh/lanmesh/safetext"
)

// lineHandler writes the library's log records as the command's own lines:
// "15:04:05.000 warning   heard ...", one line each, in the format of the
// event lines. The attributes follow only with --verbose; a warning's
// sentence stands alone. Records that repeat an event line the command
// prints anyway (a link that failed: the "left" line says why) are dropped.
type lineHandler struct {
	mu      *sync.Mutex // guards w, shared by the handler's copies
	w       io.Writer
	level   slog.Level
	verbose bool
	attrs   []slog.Attr
	repeats []string // messages that an event line already tells
}

func newLineHandler(w io.Writer, verbose bool) *lineHandler {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return &lineHandler{mu: new(sync.Mutex), w: w, level: level, verbose: verbose, repeats: []string{"mesh: link failed"}}
}

// quieting returns a copy of h that also drops records of these messages
// (unless verbose).
func (h *lineHandler) quieting(msgs ...string) *lineHandler {
	c := *h
	c.repeats = append(append([]string(nil), h.repeats...), msgs...)
	return &c
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	for _, m := range h.repeats {
		if r.Message == m && !h.verbose {
			return nil
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s %s", stamp(r.Time.In(time.Local)), levelWord(r.Level), safetext.Line(r.Message))
	if h.verbose {
		add := func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%s", a.Key, safetext.Line(a.Value.String()))
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }

func levelWord(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}
