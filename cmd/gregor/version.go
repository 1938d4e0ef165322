package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release version, set at link time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

// runVersion prints the version, the Go version and, when the binary was
// built from a VCS checkout, the revision.
func runVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stderr)
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gregor %s %s%s\n", version, runtime.Version(), vcsSuffix())
	return nil
}

// vcsSuffix returns " rev <revision>[+dirty]" from the build info, or "".
func vcsSuffix() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return " rev " + rev + dirty
}
