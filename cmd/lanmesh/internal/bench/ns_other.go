//go:build !linux

package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

func nsUnavailable() error {
	return skip("network namespaces need Linux (this is %s)", runtime.GOOS)
}

func runDiscovery(context.Context, *runner) ([]Result, error) { return nil, nsUnavailable() }
func runMeshForm(context.Context, *runner) ([]Result, error)  { return nil, nsUnavailable() }
func runLiveness(context.Context, *runner) ([]Result, error)  { return nil, nsUnavailable() }

// RunNode runs a node in a namespace host; only on Linux.
func RunNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("bench: namespace nodes need Linux")
}
