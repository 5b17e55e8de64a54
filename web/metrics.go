package web

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"strings"
)

// serveMetrics writes the state in Prometheus's text format (version
// 0.0.4), by hand: a handful of families need no client library.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	snap := s.snap
	events := maps.Clone(s.track.counts)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b := bufio.NewWriter(w)
	defer b.Flush()
	family := func(name, typ, help string) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	states := map[string]int{"linked": 0, "dialling": 0, "seen": 0}
	for _, p := range snap.Peers {
		states[p.State]++
	}
	family("lanmesh_peers", "gauge", "Peers this node knows, by state.")
	for _, st := range []string{"linked", "dialling", "seen"} {
		fmt.Fprintf(b, "lanmesh_peers{state=%q} %d\n", st, states[st])
	}
	family("lanmesh_peer_events_total", "counter", "Peer events seen since the page started, by kind.")
	for _, k := range []string{"joined", "left", "restarted"} {
		fmt.Fprintf(b, "lanmesh_peer_events_total{kind=%q} %d\n", k, events[k])
	}
	linked := snap.Peers[:0:0]
	for _, p := range snap.Peers {
		if p.State == "linked" {
			linked = append(linked, p)
		}
	}
	peer := func(p peerView) string {
		return fmt.Sprintf(`peer_id="%s",peer_name="%s"`, label(p.ID), label(p.Name))
	}
	family("lanmesh_link_rtt_seconds", "gauge", "Smoothed round-trip time of each link (0 before the first pong).")
	for _, p := range linked {
		fmt.Fprintf(b, "lanmesh_link_rtt_seconds{%s} %g\n", peer(p), p.RTTms/1000)
	}
	family("lanmesh_link_bytes_total", "counter", "Bytes on each link's wire since it came up, by direction.")
	for _, p := range linked {
		fmt.Fprintf(b, "lanmesh_link_bytes_total{%s,direction=\"in\"} %d\n", peer(p), p.BytesIn)
		fmt.Fprintf(b, "lanmesh_link_bytes_total{%s,direction=\"out\"} %d\n", peer(p), p.BytesOut)
	}
	family("lanmesh_link_messages_total", "counter", "Application messages on each link since it came up, by direction.")
	for _, p := range linked {
		fmt.Fprintf(b, "lanmesh_link_messages_total{%s,direction=\"in\"} %d\n", peer(p), p.MsgsIn)
		fmt.Fprintf(b, "lanmesh_link_messages_total{%s,direction=\"out\"} %d\n", peer(p), p.MsgsOut)
	}
	family("lanmesh_link_dropped_total", "counter", "Frames each link received and skipped (unknown type, malformed).")
	for _, p := range linked {
		fmt.Fprintf(b, "lanmesh_link_dropped_total{%s} %d\n", peer(p), p.Dropped)
	}
	family("lanmesh_traffic_log_recording", "gauge", "1 while the traffic log records (the traffic families need it).")
	on := 0
	if snap.Traffic.On {
		on = 1
	}
	fmt.Fprintf(b, "lanmesh_traffic_log_recording %d\n", on)
	family("lanmesh_traffic_messages_total", "counter", "Messages seen by the traffic log while it recorded, by type and direction.")
	for _, t := range snap.Traffic.Types {
		fmt.Fprintf(b, "lanmesh_traffic_messages_total{type=\"%s\",direction=\"in\"} %d\n", label(t.Type), t.MsgsIn)
		fmt.Fprintf(b, "lanmesh_traffic_messages_total{type=\"%s\",direction=\"out\"} %d\n", label(t.Type), t.MsgsOut)
	}
	family("lanmesh_traffic_bytes_total", "counter", "Frame bytes seen by the traffic log while it recorded, by type and direction.")
	for _, t := range snap.Traffic.Types {
		fmt.Fprintf(b, "lanmesh_traffic_bytes_total{type=\"%s\",direction=\"in\"} %d\n", label(t.Type), t.BytesIn)
		fmt.Fprintf(b, "lanmesh_traffic_bytes_total{type=\"%s\",direction=\"out\"} %d\n", label(t.Type), t.BytesOut)
	}
	if len(snap.Charts) > 0 {
		family("lanmesh_figure", "gauge", "The newest figure of each charted machine (the cpu monitor's, for one).")
		for _, c := range snap.Charts {
			for _, f := range c.Figures {
				if len(f.Values) > 0 {
					fmt.Fprintf(b, "lanmesh_figure{machine_id=\"%s\",machine=\"%s\",figure=\"%s\",unit=\"%s\"} %g\n",
						label(c.ID), label(c.Name), label(f.Name), label(f.Unit), f.Values[len(f.Values)-1])
				}
			}
		}
	}
}

// label escapes a label value as the text format wants: backslash, double
// quote and line feed. Names come from the LAN: this is what keeps one
// from forging a line of its own.
var label = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace
