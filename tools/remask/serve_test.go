package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects the server's log lines from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testCLI is a cli with no environment: no $REMASK_MODELS, no executable.
func testCLI(stdout, stderr io.Writer) *cli {
	return &cli{
		stdin: strings.NewReader(""), stdout: stdout, stderr: stderr,
		getenv:     func(string) string { return "" },
		executable: func() (string, error) { return "", errors.New("no executable in tests") },
	}
}

var listeningRE = regexp.MustCompile(`msg=listening url=http://([0-9.:]+)/`)

// startServe runs `remask serve args` until the returned stop is called; it
// returns the base URL, the log, and stop, which returns the exit code.
func startServe(t *testing.T, args ...string) (base string, logs *lockedBuffer, stop func() int) {
	t.Helper()
	logs = &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	c := testCLI(io.Discard, logs)
	code := make(chan int, 1)
	go func() {
		code <- c.report("serve", serveCommand(ctx, c, append([]string{"--addr", "127.0.0.1:0", "--threads", "1", "--backend", "cpu"}, args...)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
			break
		}
		select {
		case c := <-code:
			cancel()
			t.Fatalf("serve exited with %d before listening:\n%s", c, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve is not listening after 10 s:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	var exit int
	stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			select {
			case exit = <-code:
			case <-time.After(15 * time.Second):
				t.Fatalf("serve did not stop within 15 s:\n%s", logs.String())
			}
		}
		return exit
	}
	t.Cleanup(func() { stop() })
	return base, logs, stop
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestServeAPIAndSite(t *testing.T) {
	site := t.TempDir()
	if err := os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>remask</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, logs, stop := startServe(t, "--models", golden, "--site", site, "--max-tokens", "64")

	status, body := httpGet(t, base+"/v1/health")
	if status != 200 || !strings.Contains(body, `"status":"ok"`) || !strings.Contains(body, `"backend":"cpu"`) || !strings.Contains(body, `"max_tokens":64`) {
		t.Errorf("health %d %s", status, body)
	}
	status, body = httpGet(t, base+"/v1/models")
	var list struct {
		Models []struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || status != 200 {
		t.Fatalf("models %d %s", status, body)
	}
	var ids []string
	for _, m := range list.Models {
		ids = append(ids, m.ID+"="+m.Kind)
	}
	if got := strings.Join(ids, " "); !strings.Contains(got, "lm_rope_bidir_bias=language_model") || !strings.Contains(got, "judge_cls=sequence_scorer") || len(ids) != 6 {
		t.Errorf("models %s", got)
	}

	resp, err := http.Post(base+"/v1/generate", "application/json",
		strings.NewReader(`{"model":"lm_rope_bidir_bias","num_samples":2,"sequence_length":16,"iterations":3,"seed":1,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if resp.StatusCode != 200 || len(lines) != 5 || !strings.HasPrefix(lines[4], `{"event":"done"`) {
		t.Errorf("generate %d:\n%s", resp.StatusCode, data)
	}
	// The server's --max-tokens applies.
	resp, err = http.Post(base+"/v1/generate", "application/json", strings.NewReader(`{"model":"lm_rope_bidir_bias","num_samples":5,"sequence_length":16}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("over --max-tokens: status %d", resp.StatusCode)
	}

	status, body = httpGet(t, base+"/")
	if status != 200 || body != "<h1>remask</h1>\n" {
		t.Errorf("site / %d %q", status, body)
	}
	if status, _ = httpGet(t, base+"/nope.js"); status != 404 {
		t.Errorf("missing site file: %d", status)
	}

	if code := stop(); code != exitOK {
		t.Errorf("exit %d after Ctrl-C, want 0:\n%s", code, logs.String())
	}
	log := logs.String()
	for _, want := range []string{
		"msg=\"model library\" models=6",
		"the default model is not in the library",
		"method=GET path=/v1/health status=200",
		"method=POST path=/v1/generate status=200",
		"method=POST path=/v1/generate status=413",
		"method=GET path=/ status=200",
		"method=GET path=/nope.js status=404",
		"msg=\"shutting down\"",
		"msg=stopped",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "path=/v1/health"); n != 1 {
		t.Errorf("%d log lines for one health request", n)
	}
}

func TestServeWithoutSite(t *testing.T) {
	// The test runs in tools/remask, which has no site/dist.
	base, logs, _ := startServe(t, "--models", golden)
	status, body := httpGet(t, base+"/")
	if status != 404 || !strings.Contains(body, `"code":"not_found"`) || !strings.Contains(body, "/v1/") {
		t.Errorf("/ without a site: %d %s", status, body)
	}
	if !strings.Contains(logs.String(), "no site: serving the API only") {
		t.Errorf("the log does not say that no site is served:\n%s", logs.String())
	}
}

// A stream in flight when the server stops is let finish.
func TestServeShutdownLetsRequestsFinish(t *testing.T) {
	base, _, stop := startServe(t, "--models", golden)
	resp, err := http.Post(base+"/v1/generate", "application/json",
		strings.NewReader(`{"model":"lm_rope_bidir_bias","num_samples":2,"sequence_length":24,"iterations":150,"seed":1,"judge":"none","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil { // the stream has started
		t.Fatal(err)
	}
	code := make(chan int, 1)
	go func() { code <- stop() }()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the stream during shutdown: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"event":"done"`) {
		t.Errorf("the stream ended with %.200s", last)
	}
	if c := <-code; c != exitOK {
		t.Errorf("exit %d", c)
	}
}

func TestServeFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-tokens", "0"}, "--max-tokens: 0 is out of range"},
		{[]string{"--max-queue", "-1"}, "--max-queue: -1 is out of range"},
		{[]string{"--threads", "-2"}, "--threads: -2 is out of range"},
		{[]string{"--addr", ""}, "--addr: is empty"},
		{[]string{"--site", "/does/not/exist"}, "--site: /does/not/exist is not a folder"},
		{[]string{"--models", "/does/not/exist"}, "--models-dir: /does/not/exist is not a folder"},
		{[]string{"--models-dir", "/does/not/exist"}, "--models-dir: /does/not/exist is not a folder"},
		{[]string{"--backend", "tpu"}, `--backend: "tpu" is not a backend; allowed: auto, cpu, gpu`},
		{[]string{"--max-work", "0"}, "--max-work: 0 is out of range"},
		{[]string{"--max-loaded-models", "0"}, "--max-loaded-models: 0 is out of range"},
		{[]string{"--max-request-seconds", "0"}, "--max-request-seconds: 0 is out of range"},
		{[]string{"--max-request-seconds", "99999999999"}, "--max-request-seconds: 99999999999 is out of range"},
		{[]string{"--max-request-memory", "12"}, "--max-request-memory: 12 bytes is out of range"},
		{[]string{"--max-model-memory", "lots"}, `--max-model-memory: "lots" is not a size that fits (bytes, or a number with a binary unit`},
		{[]string{"--max-model-memory", "99999999TiB"}, `--max-model-memory: "99999999TiB" is not a size that fits`},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout: 0s is out of range"},
		{[]string{"--read-timeout", "soon"}, `--read-timeout: "soon" is not a valid value`},
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range cases {
		var errb bytes.Buffer
		code := run(context.Background(), append([]string{"serve"}, tc.args...), strings.NewReader(""), io.Discard, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	// A busy port is a failure (1) that says which address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var errb bytes.Buffer
	c := testCLI(io.Discard, &errb)
	code := c.report("serve", serveCommand(context.Background(), c, []string{"--addr", ln.Addr().String(), "--models", golden, "--backend", "cpu"}))
	if code != exitFailure || !strings.Contains(errb.String(), "cannot listen on "+ln.Addr().String()) {
		t.Errorf("busy port: exit %d, stderr %s", code, errb.String())
	}
	// --help prints the flags.
	var out bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--help"}, strings.NewReader(""), &out, io.Discard); code != exitOK ||
		!strings.Contains(out.String(), "--max-tokens N") || !strings.Contains(out.String(), "(default: 16384)") {
		t.Errorf("serve --help: exit %d\n%s", code, out.String())
	}
}

// Defect 15: after the grace period the old shutdown closed a stream in
// the middle of a line; now the stream's last line is an error event.
func TestServeShutdownEndsStreamsWithAnErrorEvent(t *testing.T) {
	base, logs, stop := startServe(t, "--models", golden, "--shutdown-timeout", "300ms")
	resp, err := http.Post(base+"/v1/generate", "application/json",
		strings.NewReader(`{"model":"lm_rope_bidir_bias","num_samples":4,"sequence_length":32,"iterations":1000,"seed":1,"judge":"none","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	code := make(chan int, 1)
	go func() { code <- stop() }()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading the stream during shutdown: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"event":"error","error":{"code":"shutting_down"`) {
		t.Errorf("the stream ended with %.300s", last)
	}
	if c := <-code; c != exitOK {
		t.Errorf("exit %d:\n%s", c, logs.String())
	}
	if !strings.Contains(logs.String(), "ending them") {
		t.Errorf("the log does not say that requests were ended:\n%s", logs.String())
	}
}

// Defect 15: binding a non-loopback address printed no warning. Defect
// 14: serve had no --backend flag.
func TestServeWarnsOnNonLoopbackAndTakesBackend(t *testing.T) {
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	c := testCLI(io.Discard, logs)
	done := make(chan int, 1)
	go func() {
		done <- c.report("serve", serveCommand(ctx, c, []string{"--addr", "0.0.0.0:0", "--backend", "cpu", "--threads", "1", "--models", golden}))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=listening") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	log := logs.String()
	if !strings.Contains(log, "level=WARN msg=\"listening on a non-loopback address") {
		t.Errorf("no warning for 0.0.0.0:\n%s", log)
	}
	if !strings.Contains(log, "msg=backend name=cpu") {
		t.Errorf("--backend cpu not used:\n%s", log)
	}
	base, logs2, _ := startServe(t, "--models", golden)
	if strings.Contains(logs2.String(), "non-loopback") {
		t.Errorf("a warning for 127.0.0.1:\n%s", logs2.String())
	}
	if status, body := httpGet(t, base+"/v1/health"); status != 200 || !strings.Contains(body, `"backend":"cpu"`) {
		t.Errorf("health %d %s", status, body)
	}
}

// The access flags and their environment variables reach the guard.
func TestServeAccessFlags(t *testing.T) {
	get := func(base, host, origin string) int {
		req, _ := http.NewRequest("GET", base+"/v1/health", nil)
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base, logs, _ := startServe(t, "--models", golden)
	if get(base, "evil.example", "") != 403 || get(base, "", "https://site.example") != 403 || get(base, "localhost", "http://localhost:3000") != 200 {
		t.Error("default policy")
	}
	if !strings.Contains(logs.String(), "msg=\"request refused\"") {
		t.Errorf("refusals are not logged:\n%s", logs.String())
	}
	open, _, _ := startServe(t, "--models", golden, "--allow-origin", "https://site.example", "--allow-host", "remask.lan,other.lan")
	if get(open, "remask.lan", "https://site.example") != 200 || get(open, "other.lan", "") != 200 || get(open, "evil.example", "") != 403 || get(open, "", "https://evil.example") != 403 {
		t.Error("with --allow-origin and --allow-host")
	}
	// $REMASK_ORIGINS and $REMASK_HOSTS, like OLLAMA_ORIGINS.
	logs3 := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	c := testCLI(io.Discard, logs3)
	c.getenv = func(k string) string {
		return map[string]string{"REMASK_ORIGINS": "https://env.example", "REMASK_HOSTS": "env.lan"}[k]
	}
	done := make(chan int, 1)
	go func() {
		done <- c.report("serve", serveCommand(ctx, c, []string{"--addr", "127.0.0.1:0", "--backend", "cpu", "--models", golden}))
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	var m []string
	for m == nil && time.Now().Before(deadline) {
		m = listeningRE.FindStringSubmatch(logs3.String())
		time.Sleep(10 * time.Millisecond)
	}
	if m == nil {
		t.Fatalf("not listening:\n%s", logs3.String())
	}
	env := "http://" + m[1]
	if get(env, "env.lan", "https://env.example") != 200 || get(env, "", "https://site.example") != 403 {
		t.Error("with $REMASK_ORIGINS and $REMASK_HOSTS")
	}
}

// docs/api.md's table of serve flags is the one description of them: it
// must list every flag, no other, with the default --help shows.
func TestServeFlagsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "## `remask serve`")
	end := strings.Index(doc, "### Security")
	if start < 0 || end < start {
		t.Fatal("docs/api.md has no `remask serve` section")
	}
	rows := map[string]string{} // flag -> default cell
	rowRE := regexp.MustCompile("^\\| `--([a-z-]+)[^|]*\\| ([^|]*) \\|")
	for _, line := range strings.Split(doc[start:end], "\n") {
		if m := rowRE.FindStringSubmatch(line); m != nil {
			rows[m[1]] = strings.Trim(m[2], "` ")
		}
	}
	fs, _ := serveFlags()
	seen := map[string]bool{}
	fs.fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		def, ok := rows[f.Name]
		if !ok {
			t.Errorf("docs/api.md does not list --%s", f.Name)
			return
		}
		d := fs.defValue(f.Name)
		for _, g := range fs.groups {
			for _, doc := range g.docs {
				if doc.name == f.Name && doc.def != "" {
					d = doc.def
				}
			}
		}
		if regexp.MustCompile(`^[0-9][0-9a-zA-Z.]*$`).MatchString(d) && !strings.HasPrefix(def, d) && f.Name != "threads" {
			t.Errorf("--%s: docs/api.md says default %q, --help %q", f.Name, def, d)
		}
	})
	for name := range rows {
		if !seen[name] {
			t.Errorf("docs/api.md lists --%s, which serve does not have", name)
		}
	}
}
