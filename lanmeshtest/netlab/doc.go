// Package netlab builds a LAN of network namespaces for tests: a bridge in
// a namespace of its own and N hosts, each a namespace with one veth into
// the bridge, an address in a private 10.x/24, a default route via the
// bridge and multicast on. Nothing touches the machine's own namespace, so
// broadcasts and multicasts sent inside stay inside.
//
// The smallest use, a test that runs one program per host:
//
//	func TestHelperProcess(t *testing.T) {
//		if netlab.HelperRole() != "node" {
//			return // an ordinary run, or another role
//		}
//		// ... run the program, print one line per fact on stdout ...
//		os.Exit(0)
//	}
//
//	func TestSomething(t *testing.T) {
//		lab := netlab.New(t, 3) // skips when not root
//		p := lab.Hosts[0].StartHelper(t, "node", "EXTRA=1")
//		line, err := p.WaitLine(5*time.Second, func(l string) bool { return strings.HasPrefix(l, "ready") })
//		...
//		lab.Hosts[1].LinkDown() // pull the cable
//		p.Kill()                // kill -9: no goodbye
//	}
//
// A test runs Go code in a host by re-executing its own binary there (see
// Host.StartHelper and HelperRole). Everything the lab makes is removed by
// t.Cleanup, and labs left behind by a crashed run are removed by the next.
//
// A program that is not a test (lanmesh bench) uses Build and Close instead
// of New, and Host.Start instead of StartHelper; it must Close the lab and
// stop its processes on every path itself. For its sake the package does
// not import testing: the test entry points take a TB, the few methods of
// testing.TB the lab calls, which *testing.T and *testing.B satisfy.
//
// It needs Linux, root and the ip(8) tool; New skips the test without
// them, Build returns Available's error. On other systems the package is
// empty.
package netlab
