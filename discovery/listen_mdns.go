package discovery

import (
	"context"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
)

// BrowseMDNS asks once, on each named interface (every suitable one when
// names is empty), for the lanmesh nodes of every mesh that publish
// service by mDNS, and returns what they claim after timeout. A browse
// is a question, not an announcement: nobody takes the asker for a node.
func BrowseMDNS(ctx context.Context, service string, names []string, timeout time.Duration) ([]Heard, error) {
	ifs, err := ifaddr.List(names)
	if err != nil {
		return nil, err
	}
	quiet := log.New(io.Discard, "", 0)
	entries := make(chan *mdns.ServiceEntry, 64)
	var wg sync.WaitGroup
	for _, it := range ifs {
		if !it.Up || !it.Multicast || it.Loopback || len(it.Prefixes) == 0 {
			continue
		}
		ifi, err := net.InterfaceByIndex(it.Index)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mdns.QueryContext(ctx, &mdns.QueryParam{Service: service, Domain: "local", Timeout: timeout,
				Interface: ifi, Entries: entries, DisableIPv6: true, Logger: quiet})
		}()
	}
	go func() { wg.Wait(); close(entries) }()
	var out []Heard
	for e := range entries {
		keyed := hasField(e.InfoFields, txtVersion+"="+strconv.Itoa(KeyedBeaconVersion))
		s, ok := parseEntry(e, keyed)
		if !ok {
			continue
		}
		h := Heard{Beacon: Beacon{ID: s.ID, Instance: s.Instance, Port: s.Addr.Port(), Mesh: s.Mesh, Name: s.Name},
			From: s.Addr, Keyed: keyed, At: time.Now()}
		out = append(out, h)
	}
	return out, ctx.Err()
}

func hasField(fields []string, f string) bool {
	for _, x := range fields {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}
