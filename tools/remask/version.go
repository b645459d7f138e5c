package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionString is what `remask --version` prints: the module version (a
// tag for `go install ...@vX.Y.Z`, "(devel)" for a build in a checkout),
// the VCS revision and time the go command stamped into the binary (with
// "+dirty" for uncommitted changes), and the Go version and platform.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("remask (no build information) %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	return formatVersion(bi)
}

func formatVersion(bi *debug.BuildInfo) string {
	version := bi.Main.Version
	if version == "" {
		version = "(unknown)"
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	out := "remask " + version
	switch {
	case rev != "":
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		out += ", revision " + rev
		if when != "" {
			out += " (" + when + ")"
		}
	default:
		out += ", no VCS revision recorded"
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	return out + ", " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}
