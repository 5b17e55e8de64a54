package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

const versionSummary = `Print this program's version, as the Go toolchain recorded it when it
was built (the module version, or the commit for a build from a clone),
and the Go version and platform.`

func runVersion(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("version", versionSummary, std.err)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(std.out, versionLine())
	return nil
}

// versionLine is "lanmesh VERSION (commit, time) go1.x os/arch".
func versionLine() string {
	version, extra := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version
		var rev, at, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = ", modified"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			extra = fmt.Sprintf(" (commit %s, %s%s)", rev, at, dirty)
		}
	}
	return fmt.Sprintf("lanmesh %s%s %s %s/%s", version, extra, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
