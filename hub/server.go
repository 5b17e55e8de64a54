package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure an embedded NATS server (StartServer): a hub for
// tests and for people who run no NATS server of their own, or a leaf node
// that gives a site one outbound connection to the hub.
type ServerOptions struct {
	// Listen is the host:port clients (bridges) dial. Default
	// "127.0.0.1:4222"; port 0 picks a free one (see Server.URL).
	Listen string
	// User and Password, or Token, are what clients must present; all empty:
	// no client authentication (fine on loopback, not on a network anyone
	// can reach: there, set them, and a mesh key so that the hub carries
	// only sealed bytes).
	User, Password, Token string
	// LeafListen, if set, is a host:port on which this server accepts leaf
	// nodes (port 0 picks one; see Server.LeafURL).
	LeafListen string
	// LeafRemote, if set, makes this server a leaf node of the hub at that
	// URL (nats-leaf://host:port, with user:password@ if the hub wants
	// them): the nodes of a site dial their local leaf, and the leaf keeps
	// one outbound connection to the hub, redialled as needed.
	LeafRemote string
	// Logger receives the server's log (Notice as Info, Debug and Trace as
	// Debug). Nil: silent.
	Logger *slog.Logger
}

// Server is an embedded nats-server. Close stops it and waits for every
// goroutine it started.
type Server struct {
	ns        *server.Server
	url       string
	leafURL   string
	closeOnce sync.Once
}

// readyTimeout bounds how long StartServer waits for the server to accept.
const readyTimeout = 10 * time.Second

// StartServer starts an embedded NATS server and returns once it accepts
// clients (and leaf nodes, with LeafListen).
func StartServer(opts ServerOptions) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:4222"
	}
	host, port, err := splitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("hub: Listen: %w", err)
	}
	if (opts.User == "") != (opts.Password == "") {
		return nil, errors.New("hub: set both User and Password, or neither")
	}
	if opts.Token != "" && opts.User != "" {
		return nil, errors.New("hub: set User and Password or Token, not both")
	}
	so := &server.Options{
		ServerName:            "lanmesh-hub",
		Host:                  host,
		Port:                  port,
		Username:              opts.User,
		Password:              opts.Password,
		Authorization:         opts.Token,
		NoSigs:                true,
		MaxPayload:            MaxEnvelope,
		DisableShortFirstPing: true,
	}
	if opts.LeafListen != "" {
		lh, lp, err := splitHostPort(opts.LeafListen)
		if err != nil {
			return nil, fmt.Errorf("hub: LeafListen: %w", err)
		}
		so.LeafNode.Host, so.LeafNode.Port = lh, lp
	}
	if opts.LeafRemote != "" {
		u, err := url.Parse(opts.LeafRemote)
		if err != nil {
			return nil, fmt.Errorf("hub: LeafRemote: %w", err)
		}
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}}
		so.LeafNode.ReconnectInterval = 250 * time.Millisecond
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	// The server reports a listener it cannot open only to its log (and
	// would have ReadyForConnections wait its whole timeout): the adapter
	// catches it, so that a port in use is an error at once.
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sa := slogAdapter{l: log, fatal: make(chan string, 4)}
	ns.SetLoggerV2(sa, opts.Logger != nil, false, false)
	ns.Start()
	if err := waitReady(ns, sa.fatal); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("hub: the NATS server on %s did not start: %w", opts.Listen, err)
	}
	s := &Server{ns: ns}
	if a, ok := ns.Addr().(*net.TCPAddr); ok {
		s.url = "nats://" + net.JoinHostPort(hostOf(host, a), strconv.Itoa(a.Port))
	} else {
		s.url = ns.ClientURL()
	}
	if opts.LeafListen != "" {
		// The server writes the port it picked back into its options, before
		// it is ready.
		a := &net.TCPAddr{IP: net.ParseIP(so.LeafNode.Host), Port: so.LeafNode.Port}
		s.leafURL = "nats-leaf://" + net.JoinHostPort(hostOf(so.LeafNode.Host, a), strconv.Itoa(a.Port))
	}
	return s, nil
}

// waitReady waits until ns accepts clients, or its log reports a fatal
// error (a listener that cannot open), or readyTimeout passes.
func waitReady(ns *server.Server, fatal <-chan string) error {
	for deadline := time.Now().Add(readyTimeout); time.Now().Before(deadline); {
		select {
		case msg := <-fatal:
			return errors.New(msg)
		default:
		}
		if ns.ReadyForConnections(20 * time.Millisecond) {
			return nil
		}
	}
	return fmt.Errorf("not ready within %v", readyTimeout)
}

// hostOf is the host to put in a URL: the one configured, or for a
// wildcard the loopback address (the server listens there too).
func hostOf(host string, a *net.TCPAddr) string {
	switch host {
	case "", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return host
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// URL returns the URL clients dial: nats://host:port.
func (s *Server) URL() string { return s.url }

// LeafURL returns the URL leaf nodes dial (nats-leaf://host:port), or ""
// without LeafListen.
func (s *Server) LeafURL() string { return s.leafURL }

// Close stops the server, closing every client connection, and returns
// once every goroutine it started has ended. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
	return nil
}

// slogAdapter is nats-server's Logger on a *slog.Logger; it also hands
// what the server logs as fatal to StartServer.
type slogAdapter struct {
	l     *slog.Logger
	fatal chan string
}

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error("nats: " + msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
