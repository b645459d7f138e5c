package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/api"
)

// TestBuildRunDefaultsNameShippedModels pins the model paths that
// `./build.sh run` passes by default to the ids the engine knows them by
// (api.LightModelID, api.DefaultRemaskerID) and to files that exist, so a
// renamed model cannot leave the README's second command broken.
func TestBuildRunDefaultsNameShippedModels(t *testing.T) {
	root := filepath.Join("..", "..")
	script, err := os.ReadFile(filepath.Join(root, "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{api.LightModelID, api.DefaultRemaskerID} {
		path := "models/" + id + ".safetensors"
		if !strings.Contains(string(script), path) {
			t.Errorf("build.sh does not name %s (the model id %q)", path, id)
		}
		if _, err := os.Stat(filepath.Join(root, path)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}
