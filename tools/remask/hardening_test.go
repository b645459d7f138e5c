package main

// Tests of issue 11's CLI hardening: panics, sizes, outputs, special files,
// terminal escapes.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

// TestPanicIsInternalError: an unexpected panic in a command is a short
// "internal error" with exit code 3 (not Go's trace and exit code 2, the
// usage-error code); REMASK_DEBUG=1 adds the stack.
func TestPanicIsInternalError(t *testing.T) {
	boom := command{name: "boom", run: func(context.Context, *cli, []string) error {
		var ids []int
		_ = ids[len(ids)] // an index out of range: a real runtime panic
		return nil
	}}
	for _, debug := range []bool{false, true} {
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string {
			if debug && k == "REMASK_DEBUG" {
				return "1"
			}
			return ""
		}, executable: os.Executable}
		code := c.runCommand(context.Background(), boom, nil)
		if code != exitInternal || exitInternal == exitUsage || exitInternal == exitFailure {
			t.Fatalf("exit %d, want %d (distinct from usage %d)", code, exitInternal, exitUsage)
		}
		msg := errb.String()
		if !strings.HasPrefix(msg, "remask boom: internal error: runtime error: index out of range [0] with length 0\n") {
			t.Errorf("message:\n%s", msg)
		}
		hasStack := strings.Contains(msg, "goroutine ") && strings.Contains(msg, "runtime/debug.Stack")
		if hasStack != debug {
			t.Errorf("REMASK_DEBUG=%v: stack printed = %v:\n%s", debug, hasStack, msg)
		}
		if !debug && !strings.Contains(msg, "This is a bug in remask") {
			t.Errorf("no hint to report the bug:\n%s", msg)
		}
	}
}

// TestSampleSizeFlagsNeverPanic: sizes whose product overflows, exceeds the
// token cap or exceeds --max-memory are usage errors naming the flags and
// the limit (issue 11, defect 4: the first panicked in makeslice, the
// second passed the check and died of "fatal error: out of memory").
func TestSampleSizeFlagsNeverPanic(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--num-samples", "9223372036854775807", "--sequence-length", "32"},
			[]string{"--num-samples: --num-samples x --sequence-length = 9223372036854775807 x 32 is more than the 268435456 tokens"}},
		{[]string{"--num-samples", "262144", "--sequence-length", "32", "--max-memory", "1G"},
			[]string{"--num-samples x --sequence-length = 262144 x 32 needs about 17.4 GiB of memory, more than the memory budget of 1.0 GiB (--max-memory)", "at most 15033 samples of this length fit"}},
		{[]string{"--max-memory", "-1"}, []string{`--max-memory: "-1" is not a size`}},
		{[]string{"--max-memory", "1000000T"}, []string{"--max-memory: 1000000T is more than this machine's"}},
	} {
		argv := append([]string{"sample", "--model", lmFull, "--backend", "cpu", "--seed", "1", "--iterations", "1", "--no-progress"}, tc.args...)
		code, _, errOut := runCLI(t, "", argv...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.args, code, exitUsage, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr does not contain %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}

// copyFile copies src to dst for a test.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOutputsNeverOverwrite: --save and convert --output refuse an input
// and an existing file (without --force), and with --force replace a
// symlink's target, keeping the link (issue 11, defect 7: --save over the
// model replaced it with 1 KB of JSON, exit 0; convert -o replaced a symlink
// with a regular file).
func TestOutputsNeverOverwrite(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.safetensors")
	copyFile(t, lmFull, m)
	orig, _ := os.ReadFile(m)
	existing := filepath.Join(dir, "existing.json")
	os.WriteFile(existing, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink("existing.json", link); err != nil {
		t.Fatal(err)
	}
	sample := func(extra ...string) (int, string) {
		code, _, errOut := runCLI(t, "", append([]string{"sample", "--model", m, "--backend", "cpu", "--seed", "1",
			"--num-samples", "1", "--sequence-length", "8", "--iterations", "2", "--no-progress"}, extra...)...)
		return code, errOut
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--save", m}, "--save " + m + " is also an input of this command"},
		{[]string{"--save", m, "--force"}, "--save " + m + " is also an input of this command"},
		{[]string{"--save", existing}, "--save " + existing + " already exists (file exists): choose another path, or pass --force"},
		{[]string{"--save", link}, "already exists"},
	} {
		code, errOut := sample(tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("sample %v: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if now, _ := os.ReadFile(m); !bytes.Equal(now, orig) {
		t.Fatal("the model file was changed")
	}
	if now, _ := os.ReadFile(existing); string(now) != "keep" {
		t.Fatalf("existing file changed to %q", now)
	}
	if code, errOut := sample("--save", link, "--force"); code != exitOK {
		t.Fatalf("--force over a symlink: exit %d\n%s", code, errOut)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", st.Mode(), err)
	}
	if now, _ := os.ReadFile(existing); !bytes.HasPrefix(now, []byte("{\n  \"generator\"")) {
		t.Errorf("the link's target does not hold the JSON: %.40q", now)
	}

	// convert --output.
	ckpt := filepath.Join("..", "..", "testdata", "fork", "sh_lm.pt")
	meta := filepath.Join(dir, "meta.pkl")
	copyFile(t, filepath.Join("..", "..", "testdata", "fork", "meta.pkl"), meta)
	os.WriteFile(existing, []byte("keep"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", existing}, "--output " + existing + " already exists (file exists): choose another path, or pass --force"},
		{[]string{"-o", link}, "already exists"},
		{[]string{"-o", meta, "--meta", meta, "--force"}, "--output " + meta + " is also an input of this command"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"convert", ckpt}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("convert %v: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if now, _ := os.ReadFile(existing); string(now) != "keep" {
		t.Fatalf("existing file changed to %q", now)
	}
	if code, _, errOut := runCLI(t, "", "convert", ckpt, "-o", link, "--force"); code != exitOK {
		t.Fatalf("convert --force over a symlink: exit %d\n%s", code, errOut)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("convert replaced the symlink: %v %v", st.Mode(), err)
	}
	if _, err := model.Load(existing); err != nil {
		t.Errorf("the link's target is not the converted model: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestModelsRefusesCaseVariantKeys: `remask models` reads headers with
// model.ReadHeader (issue 12 item 3): N_LAYER makes the file unreadable, as
// a load would, instead of being listed as a valid model.
func TestModelsRefusesCaseVariantKeys(t *testing.T) {
	data, err := os.ReadFile(lmFull)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.safetensors"), bytes.Replace(data, []byte(`\"n_layer\"`), []byte(`\"N_LAYER\"`), 1), 0o644)
	code, stdout, errOut := runCLI(t, "", "models", "--models", dir)
	if code != exitOK || !strings.Contains(stdout, "bad  unreadable") || !strings.Contains(stdout, `unknown field "N_LAYER"`) {
		t.Errorf("exit %d\n%s\n%s", code, stdout, errOut)
	}
}

// TestFileStringsEscaped: a model's card and source strings reach the
// terminal escaped in inspect, sample --verbose and models (issue 11,
// defect 8: they were printed raw: clear screen, colours, OSC window
// title); --json stays exact.
func TestFileStringsEscaped(t *testing.T) {
	m, err := model.Load(lmFull)
	if err != nil {
		t.Fatal(err)
	}
	const evil = "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202e"
	m.Card = "# Card\n" + evil + "\n"
	m.Source.Trainer = "trainer " + evil
	dir := t.TempDir()
	path := filepath.Join(dir, "evil.safetensors")
	if err := model.Save(path, m, model.F32); err != nil {
		t.Fatal(err)
	}
	const escaped = `\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e`
	check := func(what, out string, wantEscaped bool) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
			t.Errorf("%s: a raw control character reaches the terminal:\n%q", what, out)
		}
		if wantEscaped && !strings.Contains(out, escaped) {
			t.Errorf("%s: the escaped form %s is missing:\n%s", what, escaped, out)
		}
	}
	code, out, errOut := runCLI(t, "", "inspect", path)
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s", code, errOut)
	}
	check("inspect", out, true)
	if !strings.Contains(out, "trainer trainer "+escaped) {
		t.Errorf("inspect: source not shown escaped:\n%s", out)
	}
	code, out, errOut = runCLI(t, "", "sample", "--model", path, "--verbose", "--live", "off", "--backend", "cpu", "--seed", "1",
		"--num-samples", "1", "--sequence-length", "8", "--iterations", "2")
	if code != exitOK {
		t.Fatalf("sample: exit %d\n%s", code, errOut)
	}
	check("sample --verbose stderr", errOut, true)
	check("sample stdout", out, false)
	_, out, errOut = runCLI(t, "", "models", "--models", dir)
	check("models", out+errOut, false)

	// JSON output is exact.
	_, out, _ = runCLI(t, "", "inspect", path, "--json")
	var s struct {
		Card   string `json:"card"`
		Source struct {
			Trainer string `json:"trainer"`
		} `json:"source"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Card != m.Card || s.Source.Trainer != m.Source.Trainer {
		t.Errorf("inspect --json: card %q, trainer %q, %v", s.Card, s.Source.Trainer, err)
	}
}

// TestForwardNeed: forward's estimate includes its JSON output and
// overflows to ok=false; a modest input passes (200000 rows of 32 ids on
// the golden model measured 24 GB RSS when the kernel killed it, before
// this check; the estimate is 26.5 GiB).
func TestForwardNeed(t *testing.T) {
	m, err := model.Load(lmFull)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := forwardNeed(&m.Config, 1<<40, 1<<40); ok {
		t.Error("2^80 positions: ok")
	}
	need, ok := forwardNeed(&m.Config, 200000, 32)
	if !ok || need < 24<<30 || need > 32<<30 {
		t.Errorf("200000 x 32: %d bytes (ok %v), want 24..32 GiB", need, ok)
	}
	code, out, errOut := runCLI(t, `{"tokens": [[1, 2, 3]]}`, "forward", "--model", lmFull, "--backend", "cpu")
	if code != exitOK || !strings.HasPrefix(out, `{"logits":[[[`) {
		t.Errorf("small forward: exit %d\n%.200s\n%s", code, out, errOut)
	}
}

// TestThreadsBounded: --threads is at most maxThreads (each thread has its
// own attention scratch: --threads 1000000000 allocated a billion of them).
func TestThreadsBounded(t *testing.T) {
	for _, cmd := range [][]string{
		{"sample", "--model", lmFull},
		{"score", "--model", lmFull, "--text", "abc"},
		{"forward", "--model", lmFull},
		{"bench", "--model", lmFull, "--shapes", "1x8", "--validate", "none", "--iters", "1"},
	} {
		code, _, errOut := runCLI(t, "", append(cmd, "--backend", "cpu", "--threads", "1000000000")...)
		if code != exitUsage || !strings.Contains(errOut, "--threads: 1000000000 is out of range; use 0 for one thread per CPU core, or 1 to 1024") {
			t.Errorf("%s: exit %d\n%s", cmd[0], code, errOut)
		}
	}
}
