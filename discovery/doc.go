// Package discovery finds the other nodes of a mesh on the LAN and keeps a
// table of them, reporting each node Found, Lost, Restarted or Updated.
//
// The smallest use: announce a node that accepts links on port 7946 and
// learn of the others of mesh "demo".
//
//	cfg := discovery.DefaultConfig()
//	cfg.Mesh = "demo"
//	cfg.Port = 7946 // where this node accepts links
//	cfg.OnEvent = func(ev discovery.Event) { log.Println(ev.Kind, ev.Peer.Addr) }
//	d, err := discovery.New(cfg)
//	if err != nil { ... }
//	defer d.Close()
//
// OnEvent runs on one goroutine owned by the Discoverer, in order; Peers
// returns the table at any time. A peer's Addr is the source address of its
// beacons with its advertised port, so it is reachable from the interface it
// was heard on; Config.Interfaces restricts discovery to chosen interfaces on
// machines with VPNs or container bridges. Package mesh runs a Discoverer
// inside every Node; use this package directly to find peers without
// linking to them.
//
// # Sources
//
// Three sources feed one table, keyed by node id:
//
//   - UDP broadcast beacons (port 8222 by default) to 255.255.255.255 and to
//     the directed broadcast address of every up, broadcast-capable IPv4
//     interface. A starting node sends a query beacon at once and a few more
//     over its first second; every node that hears one answers at once, so a
//     new node is found within a round trip (about a millisecond on a LAN).
//     Then each node beacons every Interval, with jitter, and sends a leaving
//     beacon on Close.
//   - mDNS (DNS-SD) through github.com/hashicorp/mdns: each node serves a
//     service of type _lanmesh._tcp whose TXT records carry its ids, mesh
//     and version, and browses for the others periodically. It finds peers
//     where broadcast does not pass, and makes nodes visible to avahi-browse
//     and dns-sd. The library's servers never announce, so a starting node
//     sets the QU (unicast-response) bit on the browses of its first second,
//     and a node whose server sees such a browse browses back at once: both
//     sides find each other within milliseconds rather than at the next
//     periodic browse. The servers never say goodbye either, so a node that
//     only mDNS sees is lost when it stops answering browses (LostAfter).
//   - Static seeds: unicast query beacons to known host:port addresses.
//
// A peer is Lost on its leaving beacon, or when no source has heard of it for
// LostAfter (3 intervals by default). A node never finds itself, and nodes of
// another mesh are invisible; several nodes on one host share the beacon port
// and find each other. Own beacons are recognised by node id, never by IP.
//
// # Beacons
//
// A beacon is one UDP datagram of at most 512 bytes: magic "LMSH", a
// version, flags (query, leaving), the node and instance ids, the node's TCP
// port, the mesh name and the node name. Beacon.AppendBinary writes one and
// ParseBeacon reads one, rejecting anything it cannot trust (other programs
// use these ports too); the Discoverer logs such datagrams at Debug level
// only. SPEC.md section 7 gives every byte, and the mDNS records.
//
// A keyed node (Config.Keyring) sends and accepts only keyed beacons,
// version 3: magic, version 3, the 8-byte key id and a 12-byte random nonce
// in the clear, then the flags, ids, an 8-byte sequence number that grows
// with each beacon, an 8-byte query nonce (echoed in answers), port, mesh
// and node name, padded with zeros to a multiple of 64 bytes and sealed
// with ChaCha20-Poly1305 under a key derived from the mesh key. A listener
// without the key learns only that some keyed node is at the source
// address. Replays (a sequence number not above the last of that instance,
// a retired instance) are dropped. SPEC.md section 10 has the details.
//
// The mDNS service carries the same facts in TXT records: lanmesh=1 (the
// version), id=<node id>, inst=<instance id>, mesh=<mesh>, name=<node name>;
// the SRV record carries the TCP port. A keyed node's records are only
// lanmesh=3 and sig=<a sealed beacon>, under a host and instance name drawn
// at random at start.
//
// A beacon or an mDNS answer is a claim, not a proof. Only addresses on the
// subnet of an interface discovery runs on (loopback only when it runs on
// loopback) and seeds are believed; Config.Contest lets the owner of the
// links refuse a claim that a linked node restarted or left; each source
// shares a fixed table of rate buckets (BeaconRate).
//
// # Use
//
//	cfg := discovery.DefaultConfig()
//	cfg.Mesh = "demo"
//	cfg.Port = 7946 // where this node accepts links
//	cfg.OnEvent = func(ev discovery.Event) { log.Println(ev.Kind, ev.Peer.Addr) }
//	d, err := discovery.New(cfg)
//	if err != nil { ... }
//	defer d.Close()
//
// OnEvent runs on one goroutine owned by the Discoverer, in order; Peers
// returns the table at any time. A peer's Addr is the source address of its
// beacons with its advertised port, so it is reachable from the interface it
// was heard on; Config.Interfaces restricts discovery to chosen interfaces on
// machines with VPNs or container bridges.
//
// Tests never run discovery with its defaults in a machine's own network
// namespace: they restrict it to loopback (Config.UseLoopback: interface lo,
// beacons to 127.255.255.255, no mDNS) or run it in network namespaces built
// by package lanmeshtest/netlab.
package discovery
