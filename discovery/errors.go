package discovery

import "errors"

// Errors returned by this package. Callers test for them with errors.Is;
// most are wrapped with context.
var (
	// ErrBeaconMagic: the datagram does not start with the beacon magic;
	// it is some other program's packet.
	ErrBeaconMagic = errors.New("discovery: not a beacon")
	// ErrBeaconVersion: a beacon of a version this package does not read.
	ErrBeaconVersion = errors.New("discovery: unknown beacon version")
	// ErrBeaconFlags: flag bits that this version does not define.
	ErrBeaconFlags = errors.New("discovery: unknown beacon flags")
	// ErrBeaconLength: the packet is too short or too long, a string
	// length overruns it, or bytes trail the last field.
	ErrBeaconLength = errors.New("discovery: bad beacon length")
	// ErrBeaconNodeID: the node id is the nil UUID.
	ErrBeaconNodeID = errors.New("discovery: nil node id in beacon")
	// ErrBeaconInstance: the instance id is the nil UUID.
	ErrBeaconInstance = errors.New("discovery: nil instance id in beacon")
	// ErrBeaconPort: the advertised TCP port is zero.
	ErrBeaconPort = errors.New("discovery: zero port in beacon")
	// ErrBeaconUTF8: the mesh or node name is not valid UTF-8.
	ErrBeaconUTF8 = errors.New("discovery: beacon name is not UTF-8")

	// ErrBeaconKey: a keyed beacon names a key id this node does not hold
	// (another key, or the same key for another mesh).
	ErrBeaconKey = errors.New("discovery: beacon under an unknown mesh key")
	// ErrBeaconMAC: a keyed beacon's MAC does not check out: it was forged
	// or changed in transit.
	ErrBeaconMAC = errors.New("discovery: beacon MAC does not verify")

	// ErrConfig: Config.Validate found a bad field; the message names it.
	ErrConfig = errors.New("discovery: invalid config")
	// ErrListen: the beacon port could not be bound (another program
	// holds it without sharing, or the port is privileged).
	ErrListen = errors.New("discovery: cannot bind the beacon port")
)
