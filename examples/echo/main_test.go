package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
)

// TestEcho runs the server and the client in one process on loopback.
func TestEcho(t *testing.T) {
	leaktest.Check(t)
	cfg := mesh.DefaultConfig()
	cfg.Mesh = "echo-test"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, cfg, []string{"127.0.0.1:0"}, func(a []net.Addr) { ready <- a[0].String() })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := client(ctx, cfg, addr, 3, time.Millisecond, "hi there", &out); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-served
	for _, want := range []string{`echo 1 "hi there"`, `echo 2 "hi there"`, `echo 3 "hi there"`, "3 echoes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEchoBinaryForm(t *testing.T) {
	in := Echo{Seq: 0x01020304, Sent: -5, Text: "é"}
	b, _ := in.AppendBinary(nil)
	var out Echo
	if err := out.UnmarshalBinary(b); err != nil || out != in {
		t.Fatalf("%+v, %v", out, err)
	}
	if out.UnmarshalBinary(b[:5]) == nil {
		t.Fatal("short message accepted")
	}
}
