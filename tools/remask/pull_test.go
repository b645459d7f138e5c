package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remask/remask/engine/model"
)

// pullServer serves body at /m/NAME.safetensors, with Range support
// (http.ServeContent) or without it (the whole body, 200, whatever the
// request asked), and records the Range headers it saw.
type pullServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

func newPullServer(t *testing.T, body []byte, ranges bool) *pullServer {
	s := &pullServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/m/") {
			http.NotFound(w, r)
			return
		}
		if ranges {
			http.ServeContent(w, r, "model.safetensors", time.Time{}, bytes.NewReader(body))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *pullServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// pullCLI runs remask pull with XDG_DATA_HOME set to data.
func pullCLI(t *testing.T, data string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := testCLI(&out, &errb)
	c.getenv = func(k string) string {
		if k == "XDG_DATA_HOME" {
			return data
		}
		return ""
	}
	code = c.report("pull", pullCommand(context.Background(), c, args))
	return code, out.String(), errb.String()
}

func tinyModelBytes(t *testing.T) []byte {
	t.Helper()
	cfg := model.Standard()
	cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize = 1, 2, 16, 32
	m, err := model.Random(cfg, 1, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := model.Write(&b, m, model.F32); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestPull(t *testing.T) {
	body := tinyModelBytes(t)
	srv := newPullServer(t, body, true)
	data := t.TempDir()
	dir := filepath.Join(data, "remask", "models")
	dest := filepath.Join(dir, "tiny.safetensors")

	code, out, errOut := pullCLI(t, data, srv.URL+"/m/tiny.safetensors", "--sha256", sha(body))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("%s: %v (%d bytes, want %d)", dest, err, len(got), len(body))
	}
	if strings.TrimSpace(out) != dest || !strings.Contains(errOut, "MB/s") || !strings.Contains(errOut, "Saved "+dest) {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}

	// The per-user folder is part of the library: remask models lists the
	// file, and sample's default-model search looks there.
	c := testCLI(&bytes.Buffer{}, &bytes.Buffer{})
	c.getenv = func(k string) string {
		if k == "XDG_DATA_HOME" {
			return data
		}
		return ""
	}
	found, err := scanLibrary(libraryDirs("", c.getenv, c.executable))
	if err != nil || len(found) != 1 || found[0].Path != dest {
		t.Errorf("library %+v, %v; want %s", found, err, dest)
	}
	if dirs := modelDirs(c.getenv, c.executable); len(dirs) != 2 || dirs[1] != dir {
		t.Errorf("sample's model folders %v; want ./models then %s", dirs, dir)
	}

	// No silent overwrite; --force replaces.
	code, _, errOut = pullCLI(t, data, srv.URL+"/m/tiny.safetensors")
	if code != exitUsage || !strings.Contains(errOut, "already exists; pass --force") {
		t.Errorf("second pull: exit %d: %s", code, errOut)
	}
	if code, _, errOut = pullCLI(t, data, srv.URL+"/m/tiny.safetensors", "--force", "--name", "tiny"); code != exitOK {
		t.Errorf("--force: exit %d: %s", code, errOut)
	}
}

func TestPullResume(t *testing.T) {
	body := tinyModelBytes(t)
	for _, ranges := range []bool{true, false} {
		name := map[bool]string{true: "server with ranges", false: "server without ranges"}[ranges]
		t.Run(name, func(t *testing.T) {
			srv := newPullServer(t, body, ranges)
			data := t.TempDir()
			dir := filepath.Join(data, "remask", "models")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			part := filepath.Join(dir, "tiny.safetensors.part")
			half := len(body) / 2
			prefix := append([]byte(nil), body[:half]...)
			if !ranges {
				prefix = bytes.Repeat([]byte{'x'}, half) // a restart must not keep these bytes
			}
			if err := os.WriteFile(part, prefix, 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := pullCLI(t, data, srv.URL+"/m/tiny.safetensors", "--sha256", sha(body))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got, err := os.ReadFile(filepath.Join(dir, "tiny.safetensors"))
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("result: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, body))
			}
			if seen := srv.seen(); len(seen) != 1 || seen[0] != "bytes="+strconv.Itoa(half)+"-" {
				t.Errorf("Range headers sent %q; want one resume request from byte %d", seen, half)
			}
			want := "Resuming tiny at"
			if !ranges {
				want = "does not resume downloads; downloading tiny from the start"
			}
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
			if _, err := os.Stat(part); !os.IsNotExist(err) {
				t.Errorf("the .part file is still there: %v", err)
			}
		})
	}
}

func TestPullRefuses(t *testing.T) {
	body := tinyModelBytes(t)
	srv := newPullServer(t, body, true)
	garbage := newPullServer(t, []byte("this is not a model file at all"), true)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad sha256", []string{srv.URL + "/m/tiny.safetensors", "--sha256", strings.Repeat("ab", 32)}, exitFailure, "SHA-256 is " + sha(body) + ", not the --sha256 " + strings.Repeat("ab", 32) + "; deleted it"},
		{"malformed sha256", []string{srv.URL + "/m/tiny.safetensors", "--sha256", "xyz"}, exitUsage, "--sha256: \"xyz\" is not a SHA-256 digest"},
		{"not a model", []string{garbage.URL + "/m/notes.safetensors"}, exitFailure, "is not a usable remask/1 model file, deleted it"},
		{"not http", []string{"file:///etc/passwd"}, exitUsage, "is not an http:// or https:// URL"},
		{"no url", nil, exitUsage, "missing the URL to download"},
		{"404", []string{srv.URL + "/other/tiny.safetensors"}, exitFailure, "HTTP 404"},
		{"bad id from url", []string{srv.URL + "/m/.hidden.safetensors"}, exitUsage, "--name: cannot take the model id from the URL"},
		{"bad --name", []string{srv.URL + "/m/tiny.safetensors", "--name", "../x"}, exitUsage, "--name: id \"../x\" may hold only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			code, out, errOut := pullCLI(t, data, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s\nwant %q", code, tc.code, out, errOut, tc.want)
			}
			// Nothing is left behind: no model, no .part.
			entries, _ := os.ReadDir(filepath.Join(data, "remask", "models"))
			if len(entries) != 0 {
				t.Errorf("left %d files in the model folder", len(entries))
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 100-199/200", 100, 200, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes 100-99/200", 0, 0, false},
		{"bytes 100-199/150", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"bytes x-1/2", 0, 0, false},
	} {
		start, size, ok := parseContentRange(tc.in)
		if ok != tc.ok || ok && (start != tc.start || size != tc.size) {
			t.Errorf("%q: %d %d %v", tc.in, start, size, ok)
		}
	}
}

func TestUserModelsDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := userModelsDir(env(map[string]string{"XDG_DATA_HOME": "/x/data", "HOME": "/home/u"})); got != filepath.Join("/x/data", "remask", "models") {
		t.Errorf("XDG_DATA_HOME: %q", got)
	}
	// A relative XDG_DATA_HOME is invalid per the spec and ignored.
	if got := userModelsDir(env(map[string]string{"XDG_DATA_HOME": "rel", "HOME": "/home/u"})); got != filepath.Join("/home/u", ".local", "share", "remask", "models") {
		t.Errorf("HOME: %q", got)
	}
	if got := userModelsDir(env(nil)); got != "" {
		t.Errorf("nothing set: %q", got)
	}
}

// TestPullInterrupted: a connection that drops half-way keeps the .part and
// says how to resume; the same command then finishes it from there.
func TestPullInterrupted(t *testing.T) {
	body := tinyModelBytes(t)
	half := len(body) / 2
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:half]) // then the handler returns: the connection closes short
	}))
	defer broken.Close()
	data := t.TempDir()
	part := filepath.Join(data, "remask", "models", "tiny.safetensors.part")
	code, _, errOut := pullCLI(t, data, broken.URL+"/m/tiny.safetensors")
	if code != exitFailure || !strings.Contains(errOut, "run the same command again to resume") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got, err := os.ReadFile(part); err != nil || !bytes.Equal(got, body[:half]) {
		t.Fatalf(".part: %v, %d bytes, want the first %d", err, len(got), half)
	}
	srv := newPullServer(t, body, true)
	if code, _, errOut = pullCLI(t, data, srv.URL+"/m/tiny.safetensors", "--sha256", sha(body)); code != exitOK {
		t.Fatalf("resume: exit %d: %s", code, errOut)
	}
	if seen := srv.seen(); len(seen) != 1 || seen[0] != "bytes="+strconv.Itoa(half)+"-" {
		t.Errorf("Range headers %q", seen)
	}
}
