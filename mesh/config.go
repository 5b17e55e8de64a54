package mesh

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// processInstance is this program's instance id: new each time it starts, so
// that peers can tell a restarted node from a reconnecting one.
var processInstance = uuid.New()

// Config configures a Messenger: Dial, and Listen's links. Start from
// DefaultConfig, set Mesh (and what else you need), and let the
// constructors call Validate. A Config is copied on use; changing it
// afterwards changes nothing.
//
// The top level holds the node's identity and the choices every program
// makes; Link holds the tunables, whose defaults suit a LAN.
type Config struct {
	// NodeID names this node in the mesh. Default: a random id made by
	// DefaultConfig. Keep the same id across restarts (store it) if peers
	// should recognise the node; the nil UUID is invalid.
	NodeID uuid.UUID
	// Name is the node's name for people (at most 255 bytes of UTF-8).
	// Default: the host name.
	Name string
	// Mesh names the mesh; peers with another name are refused (at most 255
	// bytes, not empty). Default "lanmesh". Give each game or program its
	// own, so two of them on one LAN never link by mistake.
	Mesh string
	// Codec is "binary", "msgpack" or "json"; both ends must agree. Default
	// "binary": the fastest and cable_car-compatible, but frames hold at most
	// 254 bytes and every type needs a binary form (Validate checks the
	// registry's types).
	Codec string
	// Registry resolves message types. Default (nil): message.Default.
	Registry *message.Registry
	// Keyring holds the mesh key (see package meshkey). Default: none, and
	// links are neither authenticated nor encrypted. With a key, every link
	// runs the keyed handshake (Noise NNpsk0) under the Primary key when
	// dialling, and under whichever key of the ring the peer names when
	// accepting, and carries encrypted records; peers without a key, or with
	// another, are refused (ErrUnkeyedPeer, ErrWrongKey), and unkeyed nodes
	// refuse this one (ErrKeyRequired). The key is the same for every node
	// of the mesh; the mesh name is bound in, so one key may serve several
	// meshes.
	Keyring meshkey.Keyring
	// Logger receives the log: Debug per event, Warn on dropped frames,
	// Error once per link for what an operator can act on. Default (nil):
	// nothing is logged.
	Logger *slog.Logger

	// ReceiveQueueLimit is how many received messages wait for Get before
	// the link stops reading, which in turn stops the peer (its Sends return
	// ErrBackpressure). Default 4096. Get takes them from the queue up to
	// 128 at a time, so at most that many more are held. Larger absorbs
	// longer pauses of the application; smaller holds less memory.
	ReceiveQueueLimit int

	// Link holds the tunables of the link.
	Link LinkConfig

	// instance changes each time the program starts, so peers tell a
	// restart from a reconnection; nil means processInstance.
	instance uuid.UUID
	// listenPort is the port advertised in the handshake, so that a peer
	// that was dialled knows where to dial back; Listen and NewNode fill it.
	listenPort uint16
}

// LinkConfig holds the tunables of a link, for a Messenger (Config.Link) and
// for every link of a Node (NodeConfig.Link). DefaultLinkConfig fills them.
type LinkConfig struct {
	// Transport makes connections. Default (nil): TCP.
	Transport Transport
	// HandshakeTimeout bounds a whole handshake, and Dial's connection
	// attempt before it. Default 5 s. Shorter frees a listener from silent
	// connections sooner and gives up on an unreachable address sooner; too
	// short fails on a busy or lossy network.
	HandshakeTimeout time.Duration
	// PingInterval is how often a link sends a ping, which measures the
	// round-trip time and proves it is alive. Default 500 ms; it must be
	// under Silence. Shorter measures RTT more often for a few bytes more.
	PingInterval time.Duration
	// Silence is how long a link may receive nothing at all before the peer
	// is suspected: the link then pings it at once and waits one more
	// Silence; only if nothing at all arrives in that time either is the
	// link closed (ErrSilence). Default 3 s. On a Node's resumable links
	// (NodeConfig.Resume) that closed link is not the peer's end: the peer
	// is resuming (PeerResuming), the node redials, and a new link resumes
	// the session with nothing lost; only after Resume.Window (or a redial
	// the peer's host refuses) has it left. Without resumable links, a host
	// that vanishes (powered off, cable pulled for good) is reported left
	// after 2 x Silence (6 s). Either way a flap shorter than Silence (a Wi-Fi roam, a switch
	// port bouncing) keeps the link: TCP's retransmission timer, backed off
	// to 1.6 s and more during the cut, gets its segments through in the
	// second Silence. A peer whose process ends (exits, crashes, is
	// killed) is reported at once, whatever Silence is: its host resets
	// the connection. Shorter notices a vanished host sooner but drops
	// peers on a lossy link (TCP backs off after a few losses in a row) or
	// one that stalls (a paused debugger, a GC pause). The time the link
	// spends waiting for the application to take messages (a full receive
	// queue) does not count.
	Silence time.Duration
	// WriteTimeout is how long the peer may refuse our bytes (its receive
	// window full because it does not read) before the link closes with
	// ErrWriteTimeout. Default 10 s. Until then Send reports
	// ErrBackpressure once the send buffer is full.
	WriteTimeout time.Duration
	// CloseTimeout bounds a graceful close: flushing what is pending, the
	// Bye, and waiting for the peer to finish. Default 2 s.
	CloseTimeout time.Duration
	// SendBufferLimit is the most bytes Send queues before Xfer hands them to
	// the network; past it Send returns ErrBackpressure. Default 1 MiB. At
	// most twice this is held per link (one batch queued, one being written).
	// Larger absorbs longer stalls; smaller reports them sooner.
	SendBufferLimit int
	// AutoFlush makes Send hand its bytes to the network itself, as soon as
	// the writer is free, for programs that are not game loops. Default
	// false: bytes move on Xfer, so that a game loop sends each tick's
	// messages in one write.
	AutoFlush bool
	// Accept bounds what incoming connections and partial frames may cost
	// a Node or a Listener (see AcceptConfig). Default
	// DefaultAcceptConfig().
	Accept AcceptConfig
}

// Default values of Config and LinkConfig.
const (
	DefaultMesh              = "lanmesh"
	DefaultCodec             = "binary"
	defaultHandshakeTimeout  = 5 * time.Second
	defaultPingInterval      = 500 * time.Millisecond
	defaultSilence           = 3 * time.Second
	defaultWriteTimeout      = 10 * time.Second
	defaultCloseTimeout      = 2 * time.Second
	defaultSendBufferLimit   = 1 << 20
	defaultReceiveQueueLimit = 4096

	// minSendBufferLimit leaves room for at least a few binary frames and
	// the control frames.
	minSendBufferLimit = 1024
)

// DefaultConfig returns a Config with every default filled in and a new
// random NodeID.
func DefaultConfig() Config {
	return Config{
		NodeID:            uuid.New(),
		Name:              hostName(),
		Mesh:              DefaultMesh,
		Codec:             DefaultCodec,
		ReceiveQueueLimit: defaultReceiveQueueLimit,
		Link:              DefaultLinkConfig(),
	}
}

// DefaultLinkConfig returns a LinkConfig with every default filled in.
func DefaultLinkConfig() LinkConfig {
	return LinkConfig{
		HandshakeTimeout: defaultHandshakeTimeout,
		PingInterval:     defaultPingInterval,
		Silence:          defaultSilence,
		WriteTimeout:     defaultWriteTimeout,
		CloseTimeout:     defaultCloseTimeout,
		SendBufferLimit:  defaultSendBufferLimit,
		Accept:           DefaultAcceptConfig(),
	}
}

func hostName() string {
	host, _ := os.Hostname()
	if len(host) > maxString {
		host = host[:maxString]
	}
	return host
}

// Validate reports the first bad field, wrapping ErrConfig. It checks too
// that the codec can carry every type of the registry.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return err
	}
	return checkTypes(c.Codec, c.registry())
}

// validate is Validate short of the registry's types: a link checks its
// Config with it, and a type registered while the node runs must not stop
// new links (Send reports it).
func (c *Config) validate() error {
	if c.NodeID == uuid.Nil && c.Link == (LinkConfig{}) {
		return fmt.Errorf("%w: the Config is empty: start from DefaultConfig()", ErrConfig)
	}
	if err := validateIdentity(c.NodeID, c.Name, c.Mesh, c.Codec, c.Keyring); err != nil {
		return err
	}
	if c.ReceiveQueueLimit < 1 {
		return fmt.Errorf("%w: ReceiveQueueLimit must be at least 1", ErrConfig)
	}
	return c.Link.Validate()
}

// validateIdentity checks the fields Config and NodeConfig share.
func validateIdentity(id uuid.UUID, name, mesh, codecName string, kr meshkey.Keyring) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case id == uuid.Nil:
		return bad("NodeID is the nil UUID")
	case len(name) > maxString || !utf8.ValidString(name):
		return bad("Name must be at most %d bytes of UTF-8", maxString)
	case mesh == "" || len(mesh) > maxString || !utf8.ValidString(mesh):
		return bad("Mesh must be 1 to %d bytes of UTF-8", maxString)
	case !slices.Contains(codec.Names(), codecName):
		return bad("Codec %q is none of %v", codecName, codec.Names())
	}
	if err := kr.Validate(); err != nil {
		return bad("Keyring: %v", err)
	}
	return nil
}

// checkTypes refuses a registry holding a type the codec cannot carry, so
// that the mistake shows when the node starts, not at the first Send.
func checkTypes(codecName string, reg *message.Registry) error {
	if codecName != "binary" {
		return nil
	}
	var bin codec.Binary
	for _, t := range reg.Types() {
		if err := bin.Carries(t); err != nil {
			return fmt.Errorf("%w: the binary codec cannot carry a registered type: %w", ErrConfig, err)
		}
	}
	return nil
}

// Validate reports the first bad field, wrapping ErrConfig.
func (c *LinkConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Link: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.HandshakeTimeout <= 0:
		return bad("HandshakeTimeout must be positive")
	case c.Silence <= 0:
		return bad("Silence must be positive")
	case c.PingInterval <= 0 || c.PingInterval >= c.Silence:
		return bad("PingInterval %v must be positive and under Silence %v", c.PingInterval, c.Silence)
	case c.WriteTimeout <= 0:
		return bad("WriteTimeout must be positive")
	case c.CloseTimeout <= 0:
		return bad("CloseTimeout must be positive")
	case c.SendBufferLimit < minSendBufferLimit:
		return bad("SendBufferLimit %d is under %d", c.SendBufferLimit, minSendBufferLimit)
	}
	if err := c.Accept.validate(); err != nil {
		return err
	}
	return nil
}

// registry returns the registry in use.
func (c *Config) registry() *message.Registry {
	if c.Registry == nil {
		return message.Default
	}
	return c.Registry
}

// logger returns the logger in use; nil means discard.
func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return discardLogger
	}
	return c.Logger
}

// transport returns the transport in use.
func (c *LinkConfig) transport() Transport {
	if c.Transport == nil {
		return TCP
	}
	return c.Transport
}

// hello returns the handshake this configuration announces.
func (c *Config) hello() hello {
	inst := c.instance
	if inst == uuid.Nil {
		inst = processInstance
	}
	return hello{
		NodeID:     c.NodeID,
		InstanceID: inst,
		Name:       c.Name,
		Mesh:       c.Mesh,
		Codec:      c.Codec,
		ListenPort: c.listenPort,
		Suite:      c.suite(),
	}
}

func (c *Config) suite() byte {
	if c.Keyring.Keyed() {
		return suiteNoise
	}
	return suiteNone
}

var discardLogger = slog.New(slog.DiscardHandler)
