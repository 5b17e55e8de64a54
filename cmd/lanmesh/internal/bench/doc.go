// Package bench is the suite behind "lanmesh bench": it measures the mesh
// on this machine, each figure beside a baseline measured in the same run
// (raw TCP, or the configured limit), and renders the results as a table,
// JSON and an SVG chart. The smallest use:
//
//	rep, err := bench.Run(ctx, bench.Options{Quick: true, Only: []string{"rtt"}})
//	bench.WriteTable(os.Stdout, rep)
//
// The suite has named parts (see Parts). The in-process ones (throughput,
// rtt, fanout, keyed, resume, cost, hub) run nodes in this process over loopback TCP
// on 127.0.0.1 with discovery off; the hub part adds an embedded NATS server
// (package hub) on 127.0.0.1, on a free port. The namespace ones (discovery, mesh,
// liveness) build a LAN of network namespaces with lanmeshtest/netlab and run
// one node per host by re-executing the program (Options.NodeExe) with a
// node spec; the program hands that invocation to RunNode. They need Linux,
// root and ip(8), and are skipped with a message otherwise. The lane part
// builds two hosts joined by a netlab Wire (delay, loss, a rate) and starts
// a Node in each from this process (Host.Do: their sockets live in the
// hosts), so both read one clock. Nothing is sent anywhere but loopback and
// the namespaces the suite builds, and every namespace and process is removed on every path, a
// cancelled context included.
package bench
