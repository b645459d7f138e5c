package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/remask/remask/engine/api"
)

// TestDocsLimits pins docs/edge.md's table of the Worker's limits to
// workerConfig: a change to one without the other fails here.
func TestDocsLimits(t *testing.T) {
	doc, err := os.ReadFile("../../docs/edge.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := workerConfig(nil)
	want := map[string]int64{
		"max_tokens":          int64(cfg.MaxTokens),
		"max_iterations":      int64(cfg.MaxIterations),
		"max_work":            cfg.MaxWork,
		"max_queue":           int64(cfg.MaxQueue),
		"max_body_bytes":      cfg.MaxBodyBytes,
		"max_model_bytes":     cfg.MaxModelBytes,
		"max_request_memory":  cfg.MaxRequestMemory,
		"max_loaded_models":   int64(cfg.MaxLoadedModels),
		"max_model_memory":    cfg.MaxModelMemory,
		"max_request_seconds": int64(cfg.MaxRequestDuration.Seconds()),
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9,]+) \\|")
	got := map[string]int64{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		n, err := strconv.ParseInt(strings.ReplaceAll(m[2], ",", ""), 10, 64)
		if err != nil {
			t.Fatalf("docs/edge.md: %q: %v", m[0], err)
		}
		got[m[1]] = n
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("docs/edge.md has no row | `%s` | %d |", k, v)
		} else if g != v {
			t.Errorf("docs/edge.md says %s = %d, wasm/worker/config.go has %d", k, g, v)
		}
	}
	if !cfg.DisableLoading {
		t.Error("the Worker must not load paths or URLs (DisableLoading)")
	}
}

// TestConfigsAgree: wrangler.toml (Cloudflare) and workerd.capnp (local
// workerd) describe the same Worker.
func TestConfigsAgree(t *testing.T) {
	toml, err := os.ReadFile("../../wrangler.toml")
	if err != nil {
		t.Fatal(err)
	}
	capnp, err := os.ReadFile("workerd.capnp")
	if err != nil {
		t.Fatal(err)
	}
	date := regexp.MustCompile(`(?m)^compatibility_date = "([0-9-]+)"`).FindSubmatch(toml)
	if date == nil {
		t.Fatal("wrangler.toml has no compatibility_date")
	}
	if !strings.Contains(string(capnp), `compatibilityDate = "`+string(date[1])+`"`) {
		t.Errorf("workerd.capnp's compatibilityDate differs from wrangler.toml's %s", date[1])
	}
	for _, flag := range []string{"enable_request_signal"} {
		if !strings.Contains(string(toml), `"`+flag+`"`) || !strings.Contains(string(capnp), `"`+flag+`"`) {
			t.Errorf("compatibility flag %s must be in both wrangler.toml and workerd.capnp", flag)
		}
	}
	for _, b := range []string{`binding = "ASSETS"`, `main = "wasm/worker/dist/worker.mjs"`, `directory = "wasm/worker/dist/assets"`} {
		if !strings.Contains(string(toml), b) {
			t.Errorf("wrangler.toml lacks %s", b)
		}
	}
}

// TestLibraryShipped: every model of the Worker's library is a shipped
// file (./build.sh worker copies models/<name> into the assets), within
// the Worker's file limit.
func TestLibraryShipped(t *testing.T) {
	for _, m := range workerModels {
		if err := api.CheckID(m.ID); err != nil {
			t.Error(err)
		}
		name := filepath.Base(m.Source)
		if m.Source != "/models/"+name {
			t.Errorf("%s: source %q is not /models/<file>", m.ID, m.Source)
		}
		st, err := os.Stat(filepath.Join("../../models", name))
		if err != nil {
			t.Errorf("%s: %v", m.ID, err)
			continue
		}
		if st.Size() > maxModelBytes {
			t.Errorf("%s: %d bytes, over the Worker's %d (a static asset holds at most 25 MiB)", name, st.Size(), maxModelBytes)
		}
	}
}

// TestMemoryBudget: what the API may hold (the weights' budget and one
// generation's activations) fits under the Go runtime's soft limit, which
// leaves room under the isolate's 128 MB for the JavaScript side.
func TestMemoryBudget(t *testing.T) {
	if maxModelMemory+maxRequestMemory > goMemoryLimit {
		t.Errorf("max_model_memory %d + max_request_memory %d is over the Go memory limit %d", maxModelMemory, maxRequestMemory, goMemoryLimit)
	}
	if goMemoryLimit >= isolateMemory-16<<20 {
		t.Errorf("the Go memory limit %d leaves under 16 MiB of the isolate's %d for JavaScript", goMemoryLimit, isolateMemory)
	}
}
