//go:build unix

package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remask/remask/internal/safefile/safefiletest"
)

// Issue 11, "loading by path is confined": POST /v1/models loads files of
// the model folders only, regular files only, and no answer holds a byte
// of a file it refused (the old answer for /etc/passwd printed its first 8
// bytes as a "header length").
func TestPathLoadsConfinedToModelFolders(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	model, err := os.ReadFile(goldenPath("lm_nopos_f16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "mine.safetensors"), model, 0o644))
	secret := filepath.Join(outside, "secret.safetensors")
	must(os.WriteFile(secret, []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644))
	must(os.Symlink(secret, filepath.Join(dir, "link.safetensors")))
	must(os.Symlink(filepath.Join(dir, "mine.safetensors"), filepath.Join(dir, "alias.safetensors")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo.safetensors"), 0o644))

	_, ts := newTestServer(t, func(c *Config) { c.ModelDirs = []string{dir} })
	_, none := newTestServer(t, func(c *Config) { c.ModelDirs = nil })
	cases := []struct {
		name string
		srv  *httptest.Server
		path string
		want string // "loaded" or "status code"
	}{
		{"a file of the folder by name", ts, "mine.safetensors", "loaded"},
		{"a file of the folder by path", ts, filepath.Join(dir, "mine.safetensors"), "loaded"},
		{"a link inside the folder", ts, "alias.safetensors", "loaded"},
		{"/etc/passwd", ts, "/etc/passwd", "403 path_not_allowed"},
		{"a file elsewhere", ts, secret, "403 path_not_allowed"},
		{"a missing file elsewhere", ts, "/nonexistent/x.safetensors", "403 path_not_allowed"},
		{"dot-dot out of the folder", ts, "../" + filepath.Base(outside) + "/secret.safetensors", "403 path_not_allowed"},
		{"a link out of the folder", ts, "link.safetensors", "403 path_not_allowed"},
		{"a FIFO in the folder", ts, "fifo.safetensors", "422 not_a_file"},
		{"/dev/tty", ts, "/dev/tty", "403 path_not_allowed"},
		{"a missing file of the folder", ts, "gone.safetensors", "404 source_not_found"},
		{"no model folders", none, "/etc/passwd", "403 path_not_allowed"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, data := post(t, tc.srv, "/v1/models", fmt.Sprintf(`{"path":%q,"id":"m%d"}`, tc.path, i))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			got := ""
			if resp.StatusCode == 200 {
				evs := parseNDJSON(t, data)
				got = evs[len(evs)-1].name()
				if got == "error" {
					e := evs[len(evs)-1]["error"].(map[string]any)
					got = "error " + e["code"].(string)
				}
			} else {
				e := errorOf(t, data)
				got = strings.Fields(resp.Status)[0] + " " + e.Code
				if e.Field != "path" {
					t.Errorf("field %q", e.Field)
				}
			}
			if got != tc.want {
				t.Errorf("got %s, want %s: %s", got, tc.want, data)
			}
			for _, leak := range []string{"root:", "header length", "1294", "bytes"} {
				if tc.want != "loaded" && strings.Contains(string(data), leak) {
					t.Errorf("the answer shows %q: %s", leak, data)
				}
			}
		})
	}
}

// URL loads reach public addresses only: the check is on the address
// dialled (after DNS), so "localhost" and an open or closed local port all
// get the same refusal, and nothing is learnt about local services.
func TestURLLoadsRefusePrivateAddresses(t *testing.T) {
	files := httptest.NewServer(http.FileServer(http.Dir(golden)))
	defer files.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(files.URL, "http://"))
	_, ts := newTestServer(t, nil)
	var first string
	for _, u := range []string{
		files.URL + "/judge_cls.safetensors",
		"http://localhost:" + port + "/judge_cls.safetensors",
		"http://" + closed + "/judge_cls.safetensors",
		"http://[::1]:" + port + "/x.safetensors",
		"http://169.254.169.254/latest/meta-data.safetensors",
		"http://10.0.0.1:1/x.safetensors",
	} {
		resp, data := post(t, ts, "/v1/models", `{"url":"`+u+`","id":"u"}`)
		e := errorOf(t, data)
		if resp.StatusCode != 403 || e.Code != "url_not_allowed" || e.Field != "url" || !strings.Contains(e.Message, "--allow-private-urls") {
			t.Errorf("%s: %d %+v", u, resp.StatusCode, e)
		}
		_, msg, _ := strings.Cut(e.Message, "leads to ")
		msg = strings.NewReplacer("127.0.0.1", "", "::1", "").Replace(msg)
		if first == "" {
			first = msg
		} else if u != "http://169.254.169.254/latest/meta-data.safetensors" && u != "http://10.0.0.1:1/x.safetensors" && msg != first {
			t.Errorf("an open and a closed port answer differently:\n%s\n%s", first, msg)
		}
	}
	for _, bad := range []string{"ftp://x/a.safetensors", "file:///etc/passwd", "gopher://x"} {
		resp, data := post(t, ts, "/v1/models", `{"url":"`+bad+`"}`)
		if e := errorOf(t, data); resp.StatusCode != 400 || e.Field != "url" {
			t.Errorf("%s: %d %+v", bad, resp.StatusCode, e)
		}
	}
	// A redirect from a public-looking address to a private one is dialled
	// again, so the check applies to it too.
	if err := refuseNonPublic("tcp", "127.0.0.1:80", nil); err == nil {
		t.Error("dialling 127.0.0.1 passes")
	}
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "::1": false, "10.1.2.3": false,
		"172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false,
		"::": false, "fe80::1": false, "fc00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"64:ff9b::a00:1": false, "2002:7f00:1::": false, "224.0.0.1": false, "255.255.255.255": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("publicAddr(%s) = %v", addr, got)
		}
	}
}

// Defect 2: a slow download (or, before, a FIFO) held the one model-read
// slot forever, and GET /v1/models waited on it. Now a read has a timeout,
// ends when its client goes away, and never blocks the listing, the health
// check or generations with models already in memory.
func TestSlowLoadBlocksNothing(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(200)
		w.Write([]byte("12345678"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	_, ts := newTestServer(t, func(c *Config) {
		c.AllowPrivateURLs = true
		c.LoadTimeout = 1500 * time.Millisecond
	})
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1}`); resp.StatusCode != 200 { // lm and judge in memory
		t.Fatalf("%d %s", resp.StatusCode, data)
	}
	start := time.Now()
	loadDone := make(chan []byte, 1)
	go func() {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/models", strings.NewReader(`{"url":"`+slow.URL+`/slow.safetensors"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			loadDone <- []byte(err.Error())
			return
		}
		defer resp.Body.Close()
		data := make([]byte, 0, 4096)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			data = append(data, buf[:n]...)
			if err != nil {
				break
			}
		}
		loadDone <- data
	}()
	time.Sleep(200 * time.Millisecond) // the load holds the slot now
	for _, path := range []string{"/v1/models", "/v1/health"} {
		t0 := time.Now()
		if resp, data := do(t, ts, "GET", path, ""); resp.StatusCode != 200 || time.Since(t0) > time.Second {
			t.Errorf("GET %s during a slow load: %d after %v: %s", path, resp.StatusCode, time.Since(t0), data)
		}
	}
	t0 := time.Now()
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":2}`); resp.StatusCode != 200 || time.Since(t0) > time.Second {
		t.Errorf("generate during a slow load: %d after %v: %s", resp.StatusCode, time.Since(t0), data)
	}
	data := <-loadDone
	evs := parseNDJSON(t, data)
	last := evs[len(evs)-1]
	if last.name() != "error" || last["error"].(map[string]any)["code"] != "load_timeout" || !strings.Contains(last["error"].(map[string]any)["message"].(string), "--load-timeout") {
		t.Errorf("slow load ended with %v", evs)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the slow load ended after %v (timeout 1.5 s)", d)
	}

	// A client that goes away frees the slot at once: the next load runs.
	_, ts2 := newTestServer(t, func(c *Config) { c.AllowPrivateURLs = true })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts2.URL+"/v1/models", strings.NewReader(`{"url":"`+slow.URL+`/slow.safetensors"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	resp.Body.Close()
	t0 = time.Now()
	evs = loadEvents(t, ts2, `{"path":"lm_nopos_f16.safetensors"}`)
	if evs[len(evs)-1].name() != "loaded" || time.Since(t0) > 2*time.Second {
		t.Errorf("load after an abandoned one: %v after %v", evs[len(evs)-1], time.Since(t0))
	}
}

// Defect 2: a FIFO in the library hung GET /v1/models (the listing reads
// each file's header) and the first generation. Both answer at once now.
func TestFIFOInTheLibraryBlocksNothing(t *testing.T) {
	fifo, _ := safefiletest.FIFO(t, "pipe.safetensors")
	_, ts := newTestServer(t, func(c *Config) { c.Models = append(c.Models, ModelSource{ID: "pipe", Source: fifo}) })
	var out string
	safefiletest.Within(t, 5*time.Second, "GET /v1/models or the generation on a FIFO in the library", func() {
		_, data := do(t, ts, "GET", "/v1/models", "")
		resp, gen := post(t, ts, "/v1/generate", `{`+small+`,"model":"pipe"}`)
		out = string(data) + "\n" + strings.Fields(resp.Status)[0] + " " + string(gen)
	})
	if !strings.Contains(out, `"id":"pipe"`) || !strings.Contains(out, "named pipe") || !strings.Contains(out, "422") || !strings.Contains(out, `"code":"not_a_file"`) {
		t.Errorf("answers:\n%s", out)
	}
}
