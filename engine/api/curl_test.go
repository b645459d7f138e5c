package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCurlStreamsNDJSON is the API as a user sees it: a real listener on
// 127.0.0.1, and curl -sN posting a streaming generation.
func TestCurlStreamsNDJSON(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed; CI must run this test (./build.sh setup installs curl)")
		}
		t.Skip("curl is not installed: this test runs a real HTTP client (install curl to run it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: New(testConfig()), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	body := `{"num_samples":2,"sequence_length":24,"iterations":6,"seed":7,"stream":true,"include_text":true}`
	out, err := exec.CommandContext(ctx, curl, "-sN", "--fail-with-body", "-H", "Content-Type: application/json",
		"-d", body, base+"/v1/generate").Output()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	evs := parseNDJSON(t, out)
	var names []string
	for _, ev := range evs {
		names = append(names, ev.name())
	}
	want := "start iteration iteration iteration iteration iteration iteration done"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i, ev := range evs[1:7] {
		if ev["iteration"] != float64(i+1) || len(ev["text"].([]any)) != 2 {
			t.Errorf("iteration event %v", ev)
		}
	}
	samples := evs[7]["samples"].([]any)
	if len(samples) != 2 {
		t.Fatalf("samples %v", samples)
	}
	for _, s := range samples {
		if text := s.(map[string]any)["text"].(string); len([]rune(text)) != 24 {
			t.Errorf("sample text %q is not 24 characters", text)
		}
	}

	// An error reaches curl as JSON with its status.
	out, err = exec.CommandContext(ctx, curl, "-s", "-o", "-", "-w", "\n%{http_code}", "-d", `{"top_p":3}`, base+"/v1/generate").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	body2, code, _ := strings.Cut(strings.TrimSpace(string(out)), "\n\n")
	if code != "400" || !strings.HasPrefix(body2, `{"error":{"code":"invalid_option"`) || !strings.Contains(body2, `"field":"top_p"`) {
		t.Errorf("curl error output %q", out)
	}
}
