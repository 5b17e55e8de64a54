package bench

import (
	"context"
	"crypto/rand"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// keyOption returns the configuration change that turns a mesh key on: a
// new random key, given to every node of the part, so that the keyed part
// measures throughput and round trip through the very functions the
// unkeyed parts use, with the handshake and sealed records in the path.
func keyOption() configMod {
	key, err := meshkey.Generate(rand.Reader)
	if err != nil {
		return nil
	}
	return func(c *mesh.NodeConfig) { c.Keyring = meshkey.Keyring{Primary: key} }
}

// noKeys is the keyed part's skip message when no key can be made.
const noKeys = "no mesh key could be generated"

func runKeyed(ctx context.Context, r *runner) ([]Result, error) {
	mod := keyOption()
	if mod == nil {
		return nil, skip(noKeys)
	}
	out, err := throughputResults(ctx, r, mod)
	if err != nil {
		return out, err
	}
	rtt, err := rttResults(ctx, r, mod)
	return append(out, rtt...), err
}
