package mesh_test

import (
	"context"
	"fmt"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// Two nodes linked directly. The in-memory network stands in for TCP; leave
// Config.Transport nil and use "host:port" addresses for the real thing.
func Example() {
	cfg := mesh.DefaultConfig()
	cfg.Mesh = "example"
	cfg.Link.Transport = mesh.NewMemNetwork()

	ln, err := mesh.Listen(cfg, "server:7000")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	ctx := context.Background()
	client, err := mesh.Dial(ctx, cfg, "server:7000")
	if err != nil {
		panic(err)
	}
	server, err := ln.Accept(ctx)
	if err != nil {
		panic(err)
	}
	defer server.Close()

	// The client is a game loop: Send queues, Xfer moves the bytes.
	client.Send(&message.Identify{Username: "ann", Hostname: "box"})
	client.Xfer()

	// The server is not: it blocks in Receive.
	msg, _ := server.Receive(ctx)
	fmt.Printf("%T %+v\n", msg.Msg, *msg.Msg.(*message.Identify))

	// A graceful close: the server learns why.
	client.CloseReason("bye now")
	_, err = server.Receive(ctx)
	fmt.Println(err)
	// Output:
	// *message.Identify {Username:ann Hostname:box}
	// mesh: peer closed the link (the peer's reason: bye now)
}
