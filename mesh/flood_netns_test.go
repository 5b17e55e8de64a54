//go:build linux

package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	ossignal "os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
	"github.com/lanmesh/lanmesh/meshkey"
)

// The flood test: a keyed victim node, two honest nodes that exchange
// floodMsgs messages each with it, and an attacker host that, all the while,
// sends garbage to the victim's TCP port, holds half-open connections to it,
// and floods its beacon port with junk, unkeyed beacons and beacons signed
// with a wrong key.
const (
	floodMesh   = "flood"
	floodPort   = 7777
	floodMsgs   = 2000
	floodAttack = 4 * time.Second
)

// floodNodeConfig is the config of the flood test's lanmesh nodes.
func floodNodeConfig(name string) NodeConfig {
	cfg := DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = floodMesh
	cfg.Registry = testRegistry
	cfg.Link.AutoFlush = true
	cfg.Link.PingInterval = 100 * time.Millisecond
	cfg.Link.Silence = 2 * time.Second
	kr, err := meshkey.Load("", "", os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg.Keyring = kr
	cfg.Discovery.MDNS = false
	cfg.Discovery.Interval = 200 * time.Millisecond
	cfg.Discovery.Jitter = 20 * time.Millisecond
	cfg.Discovery.LostAfter = 2 * time.Second
	return cfg
}

// floodHelper runs the flood test's roles in a namespace host.
func floodHelper(role string) {
	switch role {
	case "flood-victim":
		floodVictim()
	case "flood-honest":
		floodHonest()
	case "flood-attacker":
		floodAttacker()
	}
	os.Exit(0)
}

// floodVictim counts what each peer sends, acknowledges a peer's last
// message, and reports its goroutines, heap and counters every 100 ms:
//
//	stats GOROUTINES HEAPINUSE REFUSEDCONNS FAILEDHANDSHAKES BEACONSDROPPED
//	got NAME     (all of NAME's messages arrived)
func floodVictim() {
	var mu sync.Mutex
	counts := map[uuid.UUID]int{}
	cfg := floodNodeConfig("victim")
	cfg.Net.Listen = []string{fmt.Sprintf(":%d", floodPort)}
	var node atomic.Pointer[Node]
	cfg.OnMessage = func(m Message) {
		mu.Lock()
		counts[m.From]++
		done := counts[m.From] == floodMsgs
		mu.Unlock()
		if done {
			fmt.Printf("got %s\n", m.FromName)
			node.Load().Send(m.From, &Text{S: "ack"})
		}
	}
	sigs := make(chan os.Signal, 1)
	ossignal.Notify(sigs, syscall.SIGTERM)
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	node.Store(n)
	fmt.Println("ready")
	report := func(prefix string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st := n.Stats()
		d := st.Discovery
		fmt.Printf("%s %d %d %d %d %d\n", prefix, runtime.NumGoroutine(), ms.HeapInuse, st.RefusedConns,
			st.FailedHandshakes, d.Rejected+d.RateLimited+d.WrongKey+d.Unkeyed+d.Ignored)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.After(2 * time.Minute); ; {
		select {
		case <-tick.C:
			report("stats")
		case <-sigs:
			report("final")
			n.CloseReason("test over")
			return
		case <-deadline:
			return
		}
	}
}

// floodHonest links with the victim, sends it floodMsgs messages, and
// prints "done" when the victim acknowledges them all.
func floodHonest() {
	cfg := floodNodeConfig(os.Getenv("NODE_NAME"))
	acked := make(chan struct{})
	var once sync.Once
	cfg.OnMessage = func(m Message) {
		if t, ok := m.Msg.(*Text); ok && t.S == "ack" {
			once.Do(func() { close(acked) })
		}
	}
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer n.CloseReason("done")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var victim uuid.UUID
	for victim == uuid.Nil {
		ev, err := nextEvent(ctx, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "no victim:", err)
			os.Exit(1)
		}
		if ev.Kind == PeerJoined && ev.Peer.Name == "victim" {
			victim = ev.Peer.ID
		}
	}
	fmt.Println("linked")
	msg := &Msg32{}
	for i := 0; i < floodMsgs; i++ {
		msg.Seq = uint64(i)
		for err := n.Send(victim, msg); err != nil; err = n.Send(victim, msg) {
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "send:", err)
				os.Exit(1)
			}
			time.Sleep(time.Millisecond) // backpressure: the victim is busy
		}
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // spread the sends over the attack
		}
	}
	fmt.Println("sent")
	select {
	case <-acked:
		fmt.Println("done")
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "no ack")
		os.Exit(1)
	}
}

// floodAttacker attacks the victim at $VICTIM for floodAttack, then prints
// what it sent: "attacked HALFOPEN GARBAGECONNS DATAGRAMS".
func floodAttacker() {
	victim := net.ParseIP(os.Getenv("VICTIM"))
	end := time.Now().Add(floodAttack)
	var halfOpen, garbage, datagrams atomic.Int64
	var wg sync.WaitGroup
	tcp := &net.TCPAddr{IP: victim, Port: floodPort}

	// Half-open connections: connect, send nothing, hold on.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; i < 500 && time.Now().Before(end); i++ {
			c, err := net.DialTimeout("tcp4", tcp.String(), 200*time.Millisecond)
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			held = append(held, c)
			halfOpen.Add(1)
		}
		time.Sleep(time.Until(end))
	}()
	// Garbage: connect, write random bytes, hang up.
	wg.Add(1)
	go func() {
		defer wg.Done()
		junk := make([]byte, 4096)
		for i := 0; i < 5000 && time.Now().Before(end); i++ {
			c, err := net.DialTimeout("tcp4", tcp.String(), 200*time.Millisecond)
			if err != nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			rand.Read(junk)
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(junk[:1+mrand.IntN(len(junk))])
			c.Close()
			garbage.Add(1)
		}
	}()
	// Beacon floods, to the victim and to the whole LAN.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		defer c.Close()
		wrongKey, _ := meshkey.Generate(rand.Reader)
		wrong := wrongKey.Derive(floodMesh)
		dests := []*net.UDPAddr{{IP: victim, Port: discovery.DefaultBeaconPort}, {IP: net.IPv4bcast, Port: discovery.DefaultBeaconPort}}
		buf := make([]byte, 512)
		for i := 0; i < 200000 && time.Now().Before(end); i++ {
			var p []byte
			switch i % 3 {
			case 0: // junk
				p = buf[:1+mrand.IntN(len(buf))]
				rand.Read(p)
			case 1: // a well-formed beacon with no key, as from a stranger
				b := discovery.Beacon{ID: uuid.New(), Instance: uuid.New(), Port: floodPort, Mesh: floodMesh, Name: "intruder"}
				p, _ = b.AppendBinary(buf[:0])
			case 2: // a keyed beacon under a key the mesh does not hold
				b := discovery.Beacon{ID: uuid.New(), Instance: uuid.New(), Port: floodPort, Mesh: floodMesh, Name: "intruder"}
				p, _ = b.AppendSigned(buf[:0], wrong)
			}
			if _, err := c.WriteToUDP(p, dests[i%2]); err == nil {
				datagrams.Add(1)
			}
		}
	}()
	wg.Wait()
	fmt.Printf("attacked %d %d %d\n", halfOpen.Load(), garbage.Load(), datagrams.Load())
}

// TestNetnsFlood: while an attacker floods a keyed node with garbage, half-
// open connections and bogus beacons, two honest nodes exchange every
// message with it; its goroutines and heap stay bounded and its counters
// show what it dropped.
func TestNetnsFlood(t *testing.T) {
	lab := netlab.New(t, 4)
	key, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	env := meshkey.EnvVar + "=" + key.String()
	victimHost, honest, attackerHost := lab.Hosts[0], lab.Hosts[1:3], lab.Hosts[3]

	victim := victimHost.StartHelper(t, "flood-victim", env)
	if _, err := victim.WaitLine(10*time.Second, func(l string) bool { return l == "ready" }); err != nil {
		t.Fatalf("victim: %v\n%s", err, victim.Stderr())
	}
	attacker := attackerHost.StartHelper(t, "flood-attacker", "VICTIM="+victimHost.Addr.String())
	var nodes []*netlab.Proc
	for i, h := range honest {
		nodes = append(nodes, h.StartHelper(t, "flood-honest", env, fmt.Sprintf("NODE_NAME=honest%d", i+1)))
	}
	for i, p := range nodes {
		if _, err := p.WaitLine(time.Minute, func(l string) bool { return l == "done" }); err != nil {
			t.Fatalf("honest%d did not finish under attack: %v\n%s", i+1, err, p.Stderr())
		}
	}
	line, err := attacker.WaitLine(time.Minute, func(l string) bool { return strings.HasPrefix(l, "attacked ") })
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, attacker.Stderr())
	}
	t.Logf("attacker sent (half-open, garbage connections, datagrams): %s", strings.TrimPrefix(line, "attacked "))

	victim.Signal(syscall.SIGTERM)
	var maxG, maxHeap uint64
	var final []uint64
	for final == nil {
		l, err := victim.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("victim: %v\n%s", err, victim.Stderr())
		}
		f := strings.Fields(l)
		if len(f) != 6 || (f[0] != "stats" && f[0] != "final") {
			continue
		}
		var v []uint64
		for _, s := range f[1:] {
			x, _ := strconv.ParseUint(s, 10, 64)
			v = append(v, x)
		}
		maxG, maxHeap = max(maxG, v[0]), max(maxHeap, v[1])
		if f[0] == "final" {
			final = v
		}
	}
	t.Logf("victim: at most %d goroutines and %.1f MiB of heap; refused %d connections, %d failed handshakes, dropped %d datagrams",
		maxG, float64(maxHeap)/(1<<20), final[2], final[3], final[4])
	// A handshake goroutine per connection in progress (MaxHandshakes), a
	// few per link and for discovery: far fewer than the attacker's
	// connections.
	if maxG > 2*defaultMaxHandshakes+100 {
		t.Errorf("%d goroutines under attack", maxG)
	}
	if maxHeap > 64<<20 {
		t.Errorf("%d bytes of heap under attack", maxHeap)
	}
	if final[2]+final[3] == 0 {
		t.Error("the victim's counters show no refused connection or failed handshake")
	}
	if final[4] == 0 {
		t.Error("the victim's counters show no dropped datagram")
	}
}
