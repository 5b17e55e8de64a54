// Package lanmeshtest is the home of lanmesh's test support: packages for
// testing programs built on lanmesh, which lanmesh's own tests use too.
//
//   - leaktest checks that a test leaves no goroutine behind:
//     call leaktest.Check(t) first in a test, and every goroutine started
//     after it must have ended once the test's cleanups have run.
//   - netlab builds a LAN of Linux network namespaces, so that discovery
//     (broadcast, mDNS), partitions and hosts that die can be tested
//     without sending a packet to the machine's real network.
//
// They are public, as net/http/httptest is, rather than internal, because
// a program that uses lanmesh needs the same two things to test itself:
// proof that Close stops everything it started, and a LAN of several hosts
// that a test can build, break and remove. They are kept out of the
// library's own packages so that a program linking lanmesh links none of
// them; and netlab imports no testing package, so that lanmesh bench can
// build its labs without the shipped binary linking testing.
//
// This package itself holds no code.
package lanmeshtest
