// Package netlab builds a LAN of network namespaces for tests: a bridge in
// a namespace of its own and N hosts, each a namespace with one veth into
// the bridge, an address in a private 10.x/24, a default route via the
// bridge and multicast on. Nothing touches the machine's own namespace, so
// broadcasts and multicasts sent inside stay inside.
//
// A test runs Go code in a host by re-executing its own binary there (see
// Host.StartHelper and HelperRole). Everything the lab makes is removed by
// t.Cleanup, and labs left behind by a crashed run are removed by the next.
//
// It needs Linux, root and the ip(8) tool; New skips the test without
// them. On other systems the package is empty.
package netlab
