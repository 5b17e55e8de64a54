//go:build linux

package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Errors of helper processes.
var (
	// ErrTimeout: no matching line (or exit) came in time.
	ErrTimeout = errors.New("netlab: timed out waiting for a helper")
	// ErrExited: the helper ended before printing a matching line.
	ErrExited = errors.New("netlab: helper process exited")
)

// Proc is a helper process running in a host.
type Proc struct {
	cmd   *exec.Cmd
	lines chan string // closed when stdout ends
	done  chan struct{}

	// errMu guards stderr and waitErr.
	errMu   sync.Mutex
	stderr  bytes.Buffer
	waitErr error
}

// maxStderr bounds what is kept of a helper's stderr for failure reports.
const maxStderr = 64 << 10

// Start runs the program name with args in the host, with this process's
// environment plus env ("K=V"), outside a test: lanmesh bench re-executes
// itself this way. The child's stdout lines are read by Next, WaitLine and
// Lines. The child is killed if this process dies; the caller must Kill or
// Stop it on every path.
func (h *Host) Start(name string, args []string, env ...string) (*Proc, error) {
	cmd := h.Command(context.Background(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	if _, set := os.LookupEnv("GORACE"); !set {
		// A race-enabled binary sleeps 1 s at exit by default; helpers
		// stop and start often, and their races are still reported.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Proc{cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = writerFunc(p.keepStderr)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h.Name, err)
	}
	go p.read(stdout)
	return p, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *Proc) keepStderr(b []byte) (int, error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if room := maxStderr - p.stderr.Len(); room > 0 {
		p.stderr.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

func (p *Proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		select {
		case p.lines <- sc.Text():
		default:
			// A test that reads nothing must not stall the child; the
			// line is lost, and a test that needed it times out loudly.
		}
	}
	close(p.lines)
	err := p.cmd.Wait()
	p.errMu.Lock()
	p.waitErr = err
	p.errMu.Unlock()
	close(p.done)
}

// Lines returns the child's stdout lines, for a caller that waits on other
// things too (a context, several children). It is closed when stdout ends.
// Next and WaitLine read from the same channel.
func (p *Proc) Lines() <-chan string { return p.lines }

// Done is closed once the child has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Pid returns the child's process id (the test binary's, not a wrapper's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Next returns the next stdout line within timeout.
func (p *Proc) Next(timeout time.Duration) (string, error) {
	return p.WaitLine(timeout, func(string) bool { return true })
}

// WaitLine returns the first stdout line that match accepts, discarding
// the lines before it, within timeout.
func (p *Proc) WaitLine(timeout time.Duration, match func(line string) bool) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%w: %s", ErrExited, p.Stderr())
			}
			if match(line) {
				return line, nil
			}
		case <-deadline.C:
			return "", ErrTimeout
		}
	}
}

// Signal sends sig to the child.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits, at most timeout, for the child to exit and returns its exit
// error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		p.errMu.Lock()
		defer p.errMu.Unlock()
		return p.waitErr
	case <-time.After(timeout):
		return ErrTimeout
	}
}

// Stop asks the child to exit with SIGTERM and kills it if it has not
// within timeout.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Signal(syscall.SIGTERM)
	if err := p.Wait(timeout); !errors.Is(err, ErrTimeout) {
		return err
	}
	return p.Kill()
}

// Kill kills the child with SIGKILL (no chance to say goodbye) and reaps it.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("netlab: helper %d not reaped 10s after SIGKILL", p.Pid())
	}
}

// Stderr returns what the child wrote on stderr (at most 64 KiB).
func (p *Proc) Stderr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.stderr.String()
}
