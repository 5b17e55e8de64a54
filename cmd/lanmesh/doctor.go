package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/safetext"
)

const doctorSummary = `Say why peers are not found, or fewer than expected. Doctor looks at
this machine's interfaces, sends one broadcast to see whether it comes
back, listens for the beacons of every mesh (--wait) and asks mDNS, then
knocks on each node heard (a TCP connection it hangs up at once: it never
joins). It prints what it found and each problem in a sentence with the
fix, as a node started here with the same --mesh, --codec and key would
meet it. The exit status is 1 when something is wrong, 0 when healthy.`

// finding is one thing doctor says: a problem (exit status 1) or a note.
type finding struct {
	Problem bool   `json:"problem"`
	Cause   string `json:"cause"` // a word for scripts: codec, mesh, key, unreachable, firewall, ...
	Text    string `json:"text"`
	Fix     string `json:"fix,omitempty"`
}

type doctorIface struct {
	Name  string   `json:"name"`
	Used  bool     `json:"used"`
	Why   string   `json:"why,omitempty"` // why not used
	Kind  string   `json:"kind"`
	Addrs []string `json:"addrs"`
}

type doctorNode struct {
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	Addr     string   `json:"addr"`
	Mesh     string   `json:"mesh"`
	Codec    string   `json:"codec,omitempty"`
	Keyed    bool     `json:"keyed"`
	FoundBy  []string `json:"found_by"`
	RTTMics  int64    `json:"connect_us,omitempty"`
	Linkable bool     `json:"linkable"`
	Cause    string   `json:"cause,omitempty"`
}

type doctorReport struct {
	Healthy    bool          `json:"healthy"`
	Mesh       string        `json:"mesh"`
	Codec      string        `json:"codec"`
	Keyed      bool          `json:"keyed"`
	Interfaces []doctorIface `json:"interfaces"`
	EchoSent   []string      `json:"broadcast_sent"`
	EchoBack   int           `json:"broadcast_came_back"`
	Nodes      []doctorNode  `json:"nodes"`
	Findings   []finding     `json:"findings"`
}

func (r *doctorReport) problem(cause, text, fix string) {
	r.Findings = append(r.Findings, finding{Problem: true, Cause: cause, Text: text, Fix: fix})
}

func (r *doctorReport) note(cause, text, fix string) {
	r.Findings = append(r.Findings, finding{Cause: cause, Text: text, Fix: fix})
}

func runDoctor(ctx context.Context, args []string, std stdio) error {
	f, kr, err := parseLook("doctor", doctorSummary, 2500*time.Millisecond, args, std, nil, "")
	if err != nil {
		return err
	}
	if !f.json {
		fmt.Fprintf(std.out, "lanmesh doctor: a node here would join mesh %q, speak %s, %s; listening %v for beacons on UDP %d%s\n\n",
			f.mesh, f.codec, keyWords(kr.Keyed()), f.wait, f.beaconPort, map[bool]string{true: "", false: " and asking mDNS"}[f.noMDNS || f.loopback])
	}
	r := &doctorReport{Mesh: f.mesh, Codec: f.codec, Keyed: kr.Keyed()}
	doctorInterfaces(r, f)
	if !f.loopback && !f.noMDNS {
		doctorMDNSPort(r)
	}
	lk, err := lookAround(ctx, f, kr, true, true)
	if err != nil {
		return err
	}
	doctorBroadcast(r, f, lk)
	doctorNodes(r, f, kr, lk)
	r.Healthy = !slices.ContainsFunc(r.Findings, func(x finding) bool { return x.Problem })
	if f.json {
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		writeDoctor(std.out, r)
	}
	if !r.Healthy {
		return errReported
	}
	return nil
}

func keyWords(keyed bool) string {
	if keyed {
		return "with a mesh key"
	}
	return "without a mesh key"
}

// doctorInterfaces says which interfaces discovery would use, and why not
// the others.
func doctorInterfaces(r *doctorReport, f *lookFlags) {
	all, err := ifaddr.List(nil)
	if err != nil {
		r.problem("interfaces", "cannot read this machine's interfaces: "+err.Error(), "")
		return
	}
	var skipped []string
	used := 0
	for _, it := range all {
		d := doctorIface{Name: it.Name, Kind: ifaddr.KindOf(it).String()}
		for _, p := range it.Prefixes {
			d.Addrs = append(d.Addrs, p.String())
		}
		switch {
		case f.loopback:
			d.Used = it.Loopback && it.Up
			if !d.Used {
				d.Why = "not loopback (--loopback)"
			}
		case len(f.ifaces) > 0 && !slices.Contains(f.ifaces, it.Name):
			d.Why = "not chosen (--iface)"
		default:
			d.Why = ifaddr.Unusable(it)
			d.Used = d.Why == ""
			if !d.Used && !it.Loopback {
				skipped = append(skipped, it.Name+": "+d.Why)
			}
		}
		if d.Used {
			used++
			switch k := ifaddr.KindOf(it); k {
			case ifaddr.KindContainer, ifaddr.KindVPN:
				r.note("iface-"+strings.ReplaceAll(k.String(), " ", "-"), fmt.Sprintf("%s (%s) looks like a %s: beacons go there too, but what answers there is %s, not the LAN.",
					it.Name, strings.Join(d.Addrs, ", "), k, map[ifaddr.Kind]string{ifaddr.KindContainer: "containers or VMs of this machine", ifaddr.KindVPN: "the far side of a tunnel"}[k]),
					"if nodes show addresses of "+it.Name+", keep discovery on the LAN: --iface with the LAN's interface on every node.")
			}
		}
		r.Interfaces = append(r.Interfaces, d)
	}
	if used == 0 {
		what := "no interface of this machine can carry beacons"
		if len(f.ifaces) > 0 {
			what = "none of the chosen interfaces can carry beacons"
		}
		if len(skipped) > 0 {
			what += " (" + strings.Join(skipped, "; ") + ")"
		}
		fix := "connect this machine to the network and bring its interface up; on a network without broadcast (some VPNs, point-to-point links), give nodes each other's addresses with --peer host:port."
		if len(f.ifaces) > 0 {
			fix = "choose an interface that is up and has broadcast with --iface, or none to use every suitable one; without broadcast, give nodes each other's addresses with --peer host:port."
		}
		r.problem("no-broadcast", what+": no node here can be found, nor find others, by broadcast.", fix)
	}
}

// doctorMDNSPort says whether mDNS can run here: a program that holds UDP
// 5353 without sharing it keeps lanmesh's mDNS from starting.
func doctorMDNSPort(r *doctorReport) {
	others := udpListeners(5353)
	c, err := net.ListenMulticastUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
	switch {
	case err != nil && errors.Is(err, syscall.EADDRINUSE):
		r.problem("mdns-port", "another program holds UDP port 5353 (an mDNS responder) without sharing it: lanmesh cannot publish or browse mDNS here; broadcast beacons still work.",
			"stop or reconfigure that responder to share the port; or run nodes with --no-mdns and rely on broadcast.")
	case err != nil:
		r.note("mdns-port", "cannot open the mDNS port 5353: "+err.Error()+"; mDNS will not work here, broadcast still does.", "")
	default:
		c.Close()
		if others > 0 {
			r.note("mdns-port", fmt.Sprintf("%d other socket(s) share UDP port 5353 (an mDNS responder such as avahi-daemon or mDNSResponder, or lanmesh nodes): they share it, which works.", others), "")
		}
	}
}

// udpListeners counts the sockets bound to a UDP port, where the system
// says (Linux); -1 elsewhere.
func udpListeners(port int) int {
	if runtime.GOOS != "linux" {
		return -1
	}
	n := 0
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		suffix := fmt.Sprintf(":%04X", port)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) > 2 && strings.HasSuffix(f[1], suffix) {
				n++
			}
		}
	}
	return n
}

func doctorBroadcast(r *doctorReport, f *lookFlags, lk *lanLook) {
	for _, d := range lk.echoDests {
		r.EchoSent = append(r.EchoSent, d.String())
	}
	r.EchoBack = lk.echoBack
	switch {
	case lk.echoBack > 0:
	case len(lk.echoDests) == 0:
		// No interface: already a problem.
	case lk.echoErr != nil:
		r.problem("broadcast", "this machine cannot send broadcasts: "+plainSendError(lk.echoErr)+".",
			"check that the interface is up and has an address; where the network carries no broadcast, give nodes --peer host:port.")
	default:
		r.problem("broadcast", fmt.Sprintf("this machine's own broadcast to UDP port %d did not come back: a firewall here drops UDP port %d.", f.beaconPort, f.beaconPort),
			fmt.Sprintf("allow UDP port %d in and out (Linux: nft or ufw; Windows: allow lanmesh on private networks when the firewall asks; macOS: allow local network access).", f.beaconPort))
	}
}

func plainSendError(err error) string {
	switch {
	case errors.Is(err, syscall.ENETUNREACH):
		return "the network is unreachable (no route: is the interface up, with a default route?)"
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return "the system refuses (a firewall or sandbox)"
	}
	return err.Error()
}

// doctorNodes judges every node heard as a node here would meet it.
func doctorNodes(r *doctorReport, f *lookFlags, kr meshkey.Keyring, lk *lanLook) {
	nodes := lk.sorted()
	ifs, _ := ifaddr.List(f.ifaces)
	prefixes := ifaddr.AllPrefixes(ifs)
	ours := 0
	var otherMeshes []string
	type named struct{ mesh, name string }
	byName := map[named][]*heardNode{}
	var sealed []*heardNode
	for _, n := range nodes {
		if n.opaque() {
			sealed = append(sealed, n)
			r.Nodes = append(r.Nodes, doctorNode{Addr: n.where(), Keyed: true, FoundBy: n.Via, Cause: "key"})
			continue
		}
		dn := doctorNode{Name: n.Name, ID: n.ID.String(), Addr: n.Addr().String(), Mesh: n.Mesh, Codec: n.Codec,
			Keyed: n.Keyed, FoundBy: n.Via}
		if n.Probed && n.ProbeErr == nil {
			dn.RTTMics = max(n.Connect.Microseconds(), 1)
		}
		who := fmt.Sprintf("%s (%s) at %s", safetext.Line(n.Name), shortID(n.ID), n.Addr())
		cause, text, fix := judge(n, f, kr, prefixes, who)
		dn.Cause, dn.Linkable = cause, cause == ""
		if n.Mesh == f.mesh {
			ours++
			byName[named{n.Mesh, n.Name}] = append(byName[named{n.Mesh, n.Name}], n)
			if cause != "" {
				r.problem(cause, text, fix)
			} else if !slices.Contains(n.Via, "broadcast") {
				r.note("mdns-only", fmt.Sprintf("%s is heard by mDNS only: its broadcast beacons do not arrive here (a firewall on it or here drops UDP port %d, or it runs with --no-broadcast). It is found, but later, and lost later.", who, f.beaconPort),
					fmt.Sprintf("allow UDP port %d on both machines.", f.beaconPort))
			}
		} else if !slices.Contains(otherMeshes, n.Mesh) {
			otherMeshes = append(otherMeshes, n.Mesh)
		}
		r.Nodes = append(r.Nodes, dn)
	}
	// A sealed beacon does not say its mesh: while nodes of this mesh are
	// heard, a node whose beacons no key here opens is most likely of
	// another keyed mesh, and only noted.
	for _, n := range sealed {
		who := fmt.Sprintf("a keyed node at %s (key id %s)", n.where(), n.KeyID)
		var text, fix string
		if !kr.Keyed() {
			text = fmt.Sprintf("%s seals its beacons with a mesh key; a node here has none: if it is of mesh %q, they will never link.", who, safetext.Line(f.mesh))
			fix = "give this node the mesh's key: --key-file FILE (the file the other nodes use), --key or " + meshkey.EnvVar + "."
		} else {
			text = fmt.Sprintf("%s seals its beacons with a key that the key here does not open for mesh %q: if it is of this mesh, they will never link.", who, safetext.Line(f.mesh))
			fix = "give every node of the mesh the same key file (lanmesh keygen makes one) and the same --mesh."
		}
		if ours == 0 {
			r.problem("key", text, fix)
		} else {
			r.note("sealed", text, fix)
		}
	}
	for k, ns := range byName {
		if len(ns) < 2 {
			continue
		}
		var ids []string
		for _, n := range ns {
			ids = append(ids, shortID(n.ID)+" at "+n.Addr().String())
		}
		r.problem("duplicate-name", fmt.Sprintf("%d nodes of mesh %q call themselves %s (%s): people, and /to in chat, cannot tell them apart by name.",
			len(ns), safetext.Line(k.mesh), safetext.Line(k.name), strings.Join(ids, ", ")),
			"give each node its own --name (the default is the host name: are two nodes on one host, or two hosts of one name?).")
	}
	if len(otherMeshes) > 0 {
		var groups, flags []string
		for _, m := range otherMeshes {
			var names []string
			for _, n := range nodes {
				if n.Mesh == m {
					names = append(names, safetext.Line(n.Name))
				}
			}
			groups = append(groups, fmt.Sprintf("%q (%s)", safetext.Line(m), strings.Join(names, ", ")))
			flags = append(flags, "--mesh "+shellWord(m))
		}
		fix := "to join the nodes of another mesh, run with its name: " + strings.Join(flags, " or ") + " (names are compared exactly, case included)."
		if ours > 0 {
			r.note("mesh", fmt.Sprintf("also heard nodes of other meshes: %s; nodes of two meshes never link.", strings.Join(groups, "; ")), fix)
		} else {
			r.problem("mesh", fmt.Sprintf("no node of mesh %q was heard, only nodes of other meshes: %s; nodes of two meshes never link.",
				f.mesh, strings.Join(groups, "; ")), fix)
		}
	}
	if len(nodes) == 0 {
		r.problem("nothing-heard", fmt.Sprintf("no lanmesh node was heard within %v, of any mesh.", f.wait),
			"start a node on another machine of this network (lanmesh run); check that it uses the same --beacon-port, that both machines are on one network (not a guest Wi-Fi that isolates clients), and run lanmesh doctor there too.")
	} else if ours == 0 && len(otherMeshes) == 0 {
		r.problem("mesh", fmt.Sprintf("no node of mesh %q was heard.", f.mesh), "")
	}
}

// judge says why a node here would not link with n, or "" if it would.
func judge(n *heardNode, f *lookFlags, kr meshkey.Keyring, prefixes []netip.Prefix, who string) (cause, text, fix string) {
	if n.Mesh != f.mesh {
		return "mesh", "", ""
	}
	mesh := safetext.Line(n.Mesh)
	switch {
	case n.Keyed && !kr.Keyed():
		return "key", fmt.Sprintf("%s signs its beacons with a mesh key; a node here has none: they will never link.", who),
			"give this node the mesh's key: --key-file FILE (the file the other nodes use), --key or " + meshkey.EnvVar + "."
	case !n.Keyed && kr.Keyed():
		return "key", fmt.Sprintf("%s has no mesh key; a node here has one: they will never link.", who),
			"give every node of mesh " + mesh + " the same key file, or none."
	case n.Keyed && !n.Verified:
		return "key", fmt.Sprintf("%s signs with key %s, which a node here does not hold: they will never link.", who, n.KeyID),
			"give every node of mesh " + mesh + " the same key file (lanmesh keygen makes one)."
	}
	addr := n.Addr().Addr()
	if !f.loopback && !addr.IsLoopback() && !ifaddr.OnLink(prefixes, addr) && n.ProbeErr != nil {
		return "unreachable", fmt.Sprintf("%s says it is at %s, on no network of this machine, and does not answer there.", who, addr),
			"that node beacons from an interface this machine cannot reach (a VPN, a container or a second network): run it with --iface set to the LAN's interface."
	}
	switch {
	case refused(n.ProbeErr):
		return "firewall", fmt.Sprintf("%s: its beacons arrive, but its TCP port %d refuses connections: a firewall on it rejects TCP (or the node stopped).", who, n.Port),
			fmt.Sprintf("allow lanmesh's TCP port there (run it with a fixed --port %d and open that port), or allow the program in its firewall.", n.Port)
	case silent(n.ProbeErr):
		return "firewall", fmt.Sprintf("%s: its beacons arrive, but TCP to port %d gets no answer: a firewall on it or between drops TCP.", who, n.Port),
			fmt.Sprintf("allow lanmesh's TCP port there (run it with a fixed --port %d and open that port), or allow the program in its firewall.", n.Port)
	case n.ProbeErr != nil:
		return "unreachable", fmt.Sprintf("%s: its beacons arrive, but a TCP connection to it fails: %v.", who, n.ProbeErr), ""
	case n.Codec != "" && n.Codec != f.codec:
		return "codec", fmt.Sprintf("%s speaks %s; a node here speaks %s: they will never link.", who, safetext.Line(n.Codec), f.codec),
			fmt.Sprintf("give every node of mesh %s the same --codec (to join this one: --codec %s).", mesh, shellWord(n.Codec))
	}
	return "", "", ""
}

// shellWord quotes s for a shell when it needs it.
func shellWord(s string) string {
	s = safetext.Line(s)
	if s != "" && !strings.ContainsAny(s, " \t'\"\\$`!*?;&|<>()[]{}#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func writeDoctor(w io.Writer, r *doctorReport) {
	fmt.Fprintln(w, "Interfaces:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, it := range r.Interfaces {
		state := "used"
		if !it.Used {
			state = "skipped: " + it.Why
		}
		kind := ""
		if it.Kind != "LAN" {
			kind = "(" + it.Kind + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", safetext.Line(it.Name), strings.Join(it.Addrs, " "), kind, state)
	}
	tw.Flush()
	switch {
	case r.EchoBack > 0:
		fmt.Fprintf(w, "\nBroadcast: works; this machine's own broadcast came back.\n")
	case len(r.EchoSent) > 0:
		fmt.Fprintf(w, "\nBroadcast: this machine's own broadcast did not come back.\n")
	}
	fmt.Fprintln(w, "\nNodes heard:")
	if len(r.Nodes) == 0 {
		fmt.Fprintln(w, "  none")
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  MESH\tNAME\tID\tADDRESS\tCODEC\tKEYED\tFOUND BY\tCONNECT\tLINKS HERE")
	for _, n := range r.Nodes {
		c := n.Codec
		if c == "" {
			c = "?"
		}
		rt := "-"
		if n.RTTMics > 0 {
			rt = (time.Duration(n.RTTMics) * time.Microsecond).String()
		}
		verdict := "yes"
		if !n.Linkable {
			verdict = "no: " + n.Cause
		}
		mesh, name, id := safetext.Line(n.Mesh), safetext.Line(n.Name), "-"
		if len(n.ID) >= 8 {
			id = n.ID[:8]
		}
		if n.Mesh == "" && n.Keyed {
			mesh, name = "(sealed)", "-" // a keyed node whose beacons no key here opens
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", mesh, name, id, n.Addr, safetext.Line(c),
			map[bool]string{true: "yes", false: "no"}[n.Keyed], strings.Join(n.FoundBy, ","), rt, verdict)
	}
	if len(r.Nodes) > 0 {
		tw.Flush()
	}
	var problems, notes []finding
	for _, x := range r.Findings {
		if x.Problem {
			problems = append(problems, x)
		} else {
			notes = append(notes, x)
		}
	}
	for _, group := range []struct {
		title string
		list  []finding
	}{{"Problems", problems}, {"Notes", notes}} {
		if len(group.list) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", group.title)
		for i, x := range group.list {
			fmt.Fprintf(w, "  %d. [%s] %s\n", i+1, x.Cause, x.Text)
			if x.Fix != "" {
				fmt.Fprintf(w, "     Fix: %s\n", x.Fix)
			}
		}
	}
	if r.Healthy {
		k := 0
		for _, n := range r.Nodes {
			if n.Mesh == r.Mesh && n.Linkable {
				k++
			}
		}
		fmt.Fprintf(w, "\nHealthy: %d node(s) of mesh %q heard, and a node here would link with each.\n", k, safetext.Line(r.Mesh))
	} else {
		fmt.Fprintf(w, "\nNot healthy: %d problem(s) above.\n", len(problems))
	}
}
