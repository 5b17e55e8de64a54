package mesh

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
)

// MemNetwork is an in-memory network: a Transport whose addresses are names
// and whose conns are buffered pipes in the process, no sockets. Tests and
// prototypes run a whole mesh in one process over it. Its conns behave as
// TCP's do where links care: writes are buffered up to a window and then
// block (so backpressure works), deadlines are honoured, CloseWrite sends
// EOF, and writing to a closed peer fails.
type MemNetwork struct {
	// mu guards the fields below it.
	mu        sync.Mutex
	listeners map[string]*memListener
	nextPort  int
}

var _ Transport = (*MemNetwork)(nil)

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{listeners: map[string]*memListener{}, nextPort: 40000}
}

var errMemRefused = errors.New("connection refused")

// Listen listens on the name addr. An empty addr, or one ending in ":0",
// gets a free port number.
func (n *MemNetwork) Listen(addr string) (net.Listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		host := strings.TrimSuffix(addr, ":0")
		if host == "" {
			host = "mem"
		}
		for {
			n.nextPort++
			addr = host + ":" + strconv.Itoa(n.nextPort)
			if n.listeners[addr] == nil {
				break
			}
		}
	}
	if n.listeners[addr] != nil {
		return nil, &net.OpError{Op: "listen", Net: "mem", Addr: memAddr(addr), Err: errors.New("address already in use")}
	}
	l := &memListener{net: n, addr: memAddr(addr), backlog: make(chan net.Conn, 64), done: make(chan struct{})}
	n.listeners[addr] = l
	return l, nil
}

// Dial connects to the listener named addr.
func (n *MemNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[addr]
	n.nextPort++
	local := memAddr("mem-client:" + strconv.Itoa(n.nextPort))
	n.mu.Unlock()
	refused := &net.OpError{Op: "dial", Net: "mem", Addr: memAddr(addr), Err: errMemRefused}
	if l == nil {
		return nil, refused
	}
	client, server := memPipe(local, l.addr)
	select {
	case l.backlog <- server:
		return client, nil
	case <-l.done:
		return nil, refused
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: "mem", Addr: memAddr(addr), Err: ctx.Err()}
	}
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

type memListener struct {
	net       *MemNetwork
	addr      memAddr
	backlog   chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "mem", Addr: l.addr, Err: net.ErrClosed}
	}
}

func (l *memListener) Close() error {
	l.closeOnce.Do(func() {
		l.net.mu.Lock()
		delete(l.net.listeners, string(l.addr))
		l.net.mu.Unlock()
		close(l.done)
		// Dial no longer queues (it sees done, or the name is gone); refuse
		// what was queued, as a closing socket resets its backlog.
		for {
			select {
			case c := <-l.backlog:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }
