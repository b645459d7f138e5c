package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/sampler"
)

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsCoverCommandsAndCompat pins the documentation to the code: every
// command has a section in docs/cli.md and a line in its overview, and
// every --compat switch has a row in docs/reference-sampler.md's table.
func TestDocsCoverCommandsAndCompat(t *testing.T) {
	cli := readDoc(t, "cli.md")
	for _, cmd := range append(commands(), command{name: "version"}) {
		if !strings.Contains(cli, "\n## `remask "+cmd.name+"`") {
			t.Errorf("docs/cli.md has no section for remask %s", cmd.name)
		}
		if !strings.Contains(cli, "\nremask "+cmd.name+" ") {
			t.Errorf("docs/cli.md's overview does not list remask %s", cmd.name)
		}
	}
	ref := readDoc(t, "reference-sampler.md")
	for _, name := range sampler.CompatNames {
		if !strings.Contains(ref, "\n| `"+name+"` |") {
			t.Errorf("docs/reference-sampler.md's compat table has no row for %s", name)
		}
	}
}
