package bench

import (
	"bytes"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// TestNATSEchoPair: the plain NATS baseline answers on the embedded hub,
// and everything it opened is closed after.
func TestNATSEchoPair(t *testing.T) {
	leaktest.Check(t)
	srv, err := hub.StartServer(hub.ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cl closers
	defer func() { cl.close() }()
	nc, err := natsEchoPair(srv.URL(), &cl)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m, err := nc.Request(natsEchoSubject, []byte{byte(i)}, 5*time.Second)
		if err != nil || !bytes.Equal(m.Data, []byte{byte(i)}) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}
