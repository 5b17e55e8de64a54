//go:build !linux

package bench

import "context"

// runLane needs network namespaces, which need Linux.
func runLane(context.Context, *runner) ([]Result, error) { return nil, nsUnavailable() }
