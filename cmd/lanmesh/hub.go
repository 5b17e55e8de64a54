package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
)

// The environment variables that hold hub secrets, so that they need not
// be on a command line (which every user of the machine can read in ps).
const (
	hubTokenEnv    = "LANMESH_HUB_TOKEN"
	hubPasswordEnv = "LANMESH_HUB_PASSWORD"
)

// defaultHubListen is where "lanmesh hub" listens unless told otherwise:
// this machine only, as "lanmesh web" does. Sites on other machines need
// an address they reach (--listen :4222), given on purpose.
const defaultHubListen = "127.0.0.1:4222"

// hubFlags are the --hub flags of the commands that run a node. With no
// --hub the node stays on its LAN and the others must be empty.
type hubFlags struct {
	url      string
	site     string
	user     string
	password string
	token    string
	creds    string
	nkey     string
}

func (h *hubFlags) register(fs *flag.FlagSet) {
	h.registerLogin(fs, "also join the other sites of the mesh through the NATS server at this `URL` (nats://host:4222; lanmesh hub starts one)")
	fs.StringVar(&h.site, "hub-site", "", "`name` of this LAN site on the hub: the same on every node of this LAN, another on each other LAN (default: this machine's IPv4 subnet, such as 10.1.2.0/24)")
}

// registerLogin registers --hub, with usage, and the login flags: the hub
// flags of a command that only looks (peers), which has no site.
func (h *hubFlags) registerLogin(fs *flag.FlagSet, usage string) {
	fs.StringVar(&h.url, "hub", "", usage)
	fs.StringVar(&h.user, "hub-user", "", "`user` name for the hub (with --hub-password)")
	fs.StringVar(&h.password, "hub-password", "", "`password` for the hub, with --hub-user (default: $"+hubPasswordEnv+")")
	fs.StringVar(&h.token, "hub-token", "", "authentication `token` for the hub (default: $"+hubTokenEnv+", unless another login is given)")
	fs.StringVar(&h.creds, "hub-creds", "", "NATS credentials `file` (JWT and nkey seed) for the hub")
	fs.StringVar(&h.nkey, "hub-nkey", "", "NATS nkey seed `file` for the hub")
}

// check validates the --hub flags and normalises the URL: a bare
// host:port gets nats://. Its errors are usage errors.
func (h *hubFlags) check() error { return h.checkEnv(os.Getenv) }

// checkEnv is check, with the secrets the flags leave out taken from
// getenv: a password for --hub-user, a token when no other login is given.
func (h *hubFlags) checkEnv(getenv func(string) string) error {
	if h.url == "" {
		for _, f := range []struct{ name, v string }{
			{"--hub-site", h.site}, {"--hub-user", h.user}, {"--hub-password", h.password},
			{"--hub-token", h.token}, {"--hub-creds", h.creds}, {"--hub-nkey", h.nkey},
		} {
			if f.v != "" {
				return fmt.Errorf("%s needs --hub: give the hub's URL too, such as --hub nats://host:4222", f.name)
			}
		}
		return nil
	}
	var urls []string
	for u := range strings.SplitSeq(h.url, ",") {
		u, err := normalHubURL(strings.TrimSpace(u))
		if err != nil {
			return err
		}
		urls = append(urls, u)
	}
	h.url = strings.Join(urls, ",")
	if h.user != "" && h.password == "" {
		h.password = getenv(hubPasswordEnv)
	}
	if h.user == "" && h.token == "" && h.creds == "" && h.nkey == "" {
		h.token = getenv(hubTokenEnv)
	}
	ways := 0
	for _, set := range []bool{h.user != "" || h.password != "", h.token != "", h.creds != "", h.nkey != ""} {
		if set {
			ways++
		}
	}
	switch {
	case (h.user == "") != (h.password == ""):
		return errors.New("--hub-user and --hub-password go together: give both")
	case ways > 1:
		return errors.New("give one way to log in to the hub: --hub-user/--hub-password, --hub-token, --hub-creds or --hub-nkey")
	}
	for _, f := range []struct{ name, path string }{{"--hub-creds", h.creds}, {"--hub-nkey", h.nkey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s %s: %v", f.name, f.path, plainPathErr(err))
		}
	}
	return nil
}

// plainPathErr is why a file cannot be read, without the path repeated.
func plainPathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// normalHubURL checks one hub URL and gives a bare host:port the nats://
// scheme.
func normalHubURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("--hub: empty URL; give nats://host:4222")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--hub %s: not a URL; give nats://host:4222", safetext.Line(s))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return "", fmt.Errorf("--hub %s: the scheme %q is not one of nats, tls, ws, wss", safetext.Line(redactURL(s)), u.Scheme)
	}
	return s, nil
}

// redactURL hides a password in a URL, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// options are the hub.Options the flags give.
func (h *hubFlags) options(logger *slog.Logger) hub.Options {
	return hub.Options{URL: h.url, Site: h.site, User: h.user, Password: h.password, Token: h.token,
		CredsFile: h.creds, NKeySeedFile: h.nkey, Logger: logger}
}

// joinHub joins n to the hub the flags name, or returns nil when there is
// none. Its error says which hub could not be joined and what to do.
func joinHub(n *mesh.Node, h *hubFlags, logger *slog.Logger) (*hub.Bridge, error) {
	if h.url == "" {
		return nil, nil
	}
	b, err := hub.Join(n, h.options(logger))
	if err != nil {
		return nil, hubJoinError(h.url, err)
	}
	return b, nil
}

// hubJoinError words a failure to join the hub at url for people.
func hubJoinError(url string, err error) error {
	msg := strings.ToLower(err.Error())
	where := safetext.Line(redactURL(url))
	switch {
	case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		strings.Contains(msg, "authorization") || strings.Contains(msg, "authentication"):
		return fmt.Errorf("the hub at %s refused the login (%s): check --hub-user/--hub-password, --hub-token, --hub-creds or --hub-nkey against the hub's", where, plainErr(err))
	case errors.Is(err, nats.ErrNoServers) || strings.Contains(msg, "no servers") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "timeout") || strings.Contains(msg, "no such host"):
		return fmt.Errorf("no hub answers at %s (%s): check the address, or start one with \"lanmesh hub\" on a machine every site reaches", where, plainErr(err))
	}
	return fmt.Errorf("joining the hub at %s: %s", where, plainErr(err))
}

// closeHub closes the bridge (nil: none) before its node, so that the
// other sites hear this node leave.
func closeHub(b *hub.Bridge) {
	if b != nil {
		b.Close()
	}
}

// describeHub is the line a command prints once it has joined a hub.
func describeHub(h *hubFlags, b *hub.Bridge) string {
	s := fmt.Sprintf("joined the hub at %s as site %s", safetext.Line(redactURL(h.url)), quoted(b.Site()))
	if h.site == "" {
		s += " (this subnet; --hub-site names it)"
	}
	return s
}

// hubClosing reports whether ev is a remote peer reported left because
// this node's own bridge closed: the command is ending, and that is no
// news.
func hubClosing(ev mesh.PeerEvent) bool {
	return ev.Kind == mesh.PeerLeft && errors.Is(ev.Err, mesh.ErrRelayDetached)
}

// quoted is s escaped for a terminal, in double quotes.
func quoted(s string) string { return `"` + safetext.Line(s) + `"` }

const hubSummary = `Run a hub: an embedded NATS server through which the nodes of several
LANs (sites) see each other and talk. Give its URL to every node with
--hub (lanmesh run --hub nats://THIS-HOST:4222 --hub-site office). It
listens on this machine only (127.0.0.1) unless --listen names another
address; a hub for other machines must listen where they reach it (such
as --listen :4222), and should then require --token or --user/--password.
With a mesh key (--key on the nodes) everything through the hub is sealed
end to end; without one, whoever runs or reaches the hub sees the names and
messages. A site behind NAT can run its own hub with --leaf-remote that
dials this one's --leaf-listen. Runs until interrupted.`

func runHub(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("hub", hubSummary, std.err)
	listen := fs.String("listen", defaultHubListen, "accept nodes at this `address` (port 0: any free port); one beyond loopback opens the hub to the network")
	leafListen := fs.String("leaf-listen", "", "also accept NATS leaf nodes (other hubs) at this `address`")
	leafRemote := fs.String("leaf-remote", "", "also link this hub, as a leaf node, to the hub at this `URL` (nats-leaf://host:7422)")
	user := fs.String("user", "", "require this `user` name (with --password)")
	password := fs.String("password", "", "require this `password`, with --user (default: $"+hubPasswordEnv+")")
	token := fs.String("token", "", "require this `token` (default: $"+hubTokenEnv+", without --user)")
	verbose := fs.Bool("verbose", false, "log what the hub does (on stderr), not only warnings")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user != "" && *password == "" {
		*password = os.Getenv(hubPasswordEnv)
	}
	if *user == "" && *token == "" {
		*token = os.Getenv(hubTokenEnv)
	}
	switch {
	case (*user == "") != (*password == ""):
		return usageError(fs, errors.New("--user and --password go together: give both"))
	case *token != "" && *user != "":
		return usageError(fs, errors.New("give --token or --user/--password, not both"))
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", *listen}, {"--leaf-listen", *leafListen}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return usageError(fs, fmt.Errorf("%s %s: give host:port, such as 127.0.0.1:4222 or :4222 for every interface", a.flag, a.addr))
		}
		// The server would only say, after a wait, that it did not start.
		if err := canListen(a.addr); err != nil {
			return fmt.Errorf("%s %s: %s (choose another address with %s)", a.flag, a.addr, plainErr(err), a.flag)
		}
	}
	open := *token == "" && *user == ""
	for _, a := range []struct{ flag, addr string }{{"--listen", *listen}, {"--leaf-listen", *leafListen}} {
		if warn := hubBeyondLoopback(a.flag, a.addr, open); warn != "" {
			fmt.Fprintf(std.err, "lanmesh hub: warning: %s\n", warn)
		}
	}
	logger := slog.New(newLineHandler(std.err, *verbose))
	s, err := hub.StartServer(hub.ServerOptions{Listen: *listen, User: *user, Password: *password, Token: *token,
		LeafListen: *leafListen, LeafRemote: *leafRemote, Logger: logger})
	if err != nil {
		return fmt.Errorf("starting the hub at %s: %s (choose another address with --listen)", *listen, plainErr(err))
	}
	fmt.Fprintf(std.out, "lanmesh hub: listening at %s\n", s.URL())
	if u := s.LeafURL(); u != "" {
		fmt.Fprintf(std.out, "lanmesh hub: accepting leaf hubs at %s (lanmesh hub --leaf-remote %s)\n", u, joinURL(u, *leafListen))
	}
	fmt.Fprintf(std.out, "lanmesh hub: join with: lanmesh run --hub %s%s --hub-site NAME\n", joinURL(s.URL(), *listen), loginHint(*user, *token))
	<-ctx.Done()
	err = s.Close()
	fmt.Fprintln(std.out, "lanmesh hub: closed")
	return err
}

// canListen fails if a TCP listener cannot be opened at addr now (a port
// in use, an address not of this machine).
func canListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return oe.Err
		}
		return err
	}
	return ln.Close()
}

// joinURL is the URL to give other machines: the server's, with an
// unspecified host (every interface) named as a placeholder.
func joinURL(serverURL, listen string) string {
	host, _, _ := net.SplitHostPort(listen)
	if host != "" && host != "0.0.0.0" && host != "::" {
		return serverURL
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Host = net.JoinHostPort("THIS-HOST", u.Port())
	return u.String()
}

// loginHint is the part of the join line that says how to log in.
func loginHint(user, token string) string {
	switch {
	case token != "":
		return " --hub-token TOKEN"
	case user != "":
		return " --hub-user " + user + " --hub-password PASSWORD"
	}
	return ""
}

// hubBeyondLoopback says why a hub at addr is reachable by others, or ""
// when addr is on loopback.
func hubBeyondLoopback(flag, addr string, open bool) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || strings.EqualFold(host, "localhost") {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	who := "anyone who can reach " + host
	if host == "" || host == "0.0.0.0" || host == "::" {
		who = "anyone who can reach this machine"
	}
	if open {
		return fmt.Sprintf("%s %s accepts %s with no login: they can join every site's mesh and see its peers; give --token or --user/--password", flag, addr, who)
	}
	return fmt.Sprintf("%s %s accepts %s who has the login", flag, addr, who)
}
