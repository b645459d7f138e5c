package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A real client against `remask serve`: curl posts a streaming generation
// and reads the NDJSON stream line by line.
func TestServeWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed; CI must run this test (./build.sh setup installs curl)")
		}
		t.Skip("curl is not installed: this test runs a real HTTP client (install curl to run it)")
	}
	base, _, stop := startServe(t, "--models", golden)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sN", "--fail-with-body", "-H", "Content-Type: application/json",
		"-d", `{"model":"lm_rope_bidir_bias","num_samples":2,"sequence_length":20,"iterations":4,"seed":7,"stream":true,"include_text":true}`,
		base+"/v1/generate").Output()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var events []string
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		events = append(events, ev["event"].(string))
		if ev["event"] == "done" {
			samples := ev["samples"].([]any)
			if len(samples) != 2 || len(samples[0].(map[string]any)["text"].(string)) != 20 {
				t.Errorf("done event samples %v", samples)
			}
		}
	}
	if got := strings.Join(events, ","); got != "start,iteration,iteration,iteration,iteration,done" {
		t.Errorf("events %s", got)
	}
}
