package bench

import "context"

// keyOption returns the configuration change that turns a mesh key on, or
// nil while this build of lanmesh has no mesh keys. When they land, it
// becomes, for example:
//
//	func keyOption() configMod {
//		return func(c *mesh.NodeConfig) { c.Link.Key = benchKey }
//	}
//
// and the keyed part measures throughput and round trip through the very
// functions the unkeyed parts use, with that change applied to every node.
func keyOption() configMod { return nil }

// errNoKeys is the keyed part's skip message in a build without keys.
const noKeys = "mesh keys not available in this build"

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
