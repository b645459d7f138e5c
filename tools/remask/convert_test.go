package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remask/remask/engine/checkpoint"
	"github.com/remask/remask/engine/model"
)

// forkFixture is a file of testdata/fork (tools/train/fork_checkpoints.py).
func forkFixture(name string) string { return filepath.Join("..", "..", "testdata", "fork", name) }

// runTool runs one of the int-returning commands in-process.
// runConvert and runInspect run one subcommand through the whole program.
func runConvert(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"convert"}, args...), stdin, stdout, stderr)
}

func runInspect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, append([]string{"inspect"}, args...), stdin, stdout, stderr)
}

func runTool(t *testing.T, fn func(context.Context, []string, io.Reader, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := fn(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestConvertCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "sh_lm.safetensors")
	// Flags before and after the operand.
	code, stdout, stderr := runTool(t, runConvert, "--dtype", "f16", forkFixture("sh_lm.pt"), "-o", out)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "wrote "+out+": language_model from [SH] iter 250; n_layer 2, n_head 4, n_embd 32, block_size 32, vocab 67; 34,080 parameters; heads lm+critic+sampler; F16") {
		t.Errorf("summary line %q", stdout)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("want one line on stdout, got %q", stdout)
	}
	if !strings.Contains(stderr, "remask convert: warning: sampler head untrained") {
		t.Errorf("stderr %q does not carry the Q25 warning", stderr)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.DType != model.F16 || m.Config.Sampler == nil || m.Config.Sampler.Neighbors != model.NeighborsZeros {
		t.Errorf("dtype %s, sampler %+v", m.DType, m.Config.Sampler)
	}

	// F32 (the default) holds exactly the converter's values.
	ck, err := checkpoint.Open(forkFixture("sh_lm.pt"))
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := ck.Convert(checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runTool(t, runConvert, forkFixture("sh_lm.pt"), "--output="+out, "--force") // replaces the F16 file
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	got, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != model.F32 {
		t.Errorf("default dtype %s, want F32", got.DType)
	}
	for name, w := range want.Tensors {
		if !slices.Equal(got.Tensors[name].Data, w.Data) {
			t.Errorf("tensor %s differs from checkpoint.Convert's", name)
		}
	}

	// [D7] with the calibration table matched by its Windows key's basename.
	out = filepath.Join(dir, "d7.safetensors")
	code, stdout, stderr = runTool(t, runConvert, forkFixture("d7_lora.pt"), "-o", out, "--calibration", forkFixture("calibration.json"), "--dtype", "BF16")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "from [D7] iter 3000") || !strings.Contains(stdout, "BF16") {
		t.Errorf("summary %q", stdout)
	}
	m, err = model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Config.CriticCalibration) != 100 || m.Source.ForkFamily != "d7" {
		t.Errorf("calibration %d entries, source %+v", len(m.Config.CriticCalibration), m.Source)
	}

	// A checkpoint without config['meta'] needs --meta.
	out = filepath.Join(dir, "abs.safetensors")
	code, _, stderr = runTool(t, runConvert, forkFixture("sh_lm_abs_causal.pt"), "-o", out)
	if code != exitFailure || !strings.Contains(stderr, "pass the dataset's meta.pkl with --meta") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed conversion left an output file")
	}
	code, _, stderr = runTool(t, runConvert, forkFixture("sh_lm_abs_causal.pt"), "-o", out, "--meta", forkFixture("meta.pkl"))
	if code != exitOK || !strings.Contains(stderr, "critic head half-trained") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestConvertCommandErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.safetensors")
	ckpt := forkFixture("sh_lm.pt")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no operand", []string{"-o", out}, exitUsage, "missing the file to work on: remask convert CKPT.pt -o OUT.safetensors"},
		{"two operands", []string{ckpt, ckpt, "-o", out}, exitUsage, `unexpected argument "` + ckpt + `"`},
		{"no output", []string{ckpt}, exitUsage, "--output: missing"},
		{"bad dtype", []string{ckpt, "-o", out, "--dtype", "f8"}, exitUsage, `--dtype: "f8" is not a stored type; allowed: f32, f16, bf16`},
		{"unknown flag", []string{ckpt, "-o", out, "--vocab", "x"}, exitUsage, "unknown flag --vocab"},
		{"meta missing", []string{ckpt, "-o", out, "--meta", filepath.Join(dir, "nope.pkl")}, exitUsage, "--meta: stat "},
		{"meta not a pickle", []string{ckpt, "-o", out, "--meta", forkFixture("calibration.json")}, exitUsage, "--meta: " + forkFixture("calibration.json") + ": not a readable pickle"},
		{"calibration missing", []string{ckpt, "-o", out, "--calibration", filepath.Join(dir, "c.json")}, exitUsage, "--calibration: stat"},
		{"output is input", []string{ckpt, "-o", ckpt}, exitUsage, "is the checkpoint itself"},
		{"bpe", []string{forkFixture("bpe.pt"), "-o", out}, exitFailure, "vocab_size 50304 is GPT-2's BPE vocabulary"},
		{"not a checkpoint", []string{forkFixture("meta.pkl"), "-o", out}, exitFailure, "a plain pickle (a dataset meta.pkl?)"},
		{"calibration without critic", []string{forkFixture("sh_lm_compiled.pt"), "-o", out, "--calibration", forkFixture("calibration.json")}, exitFailure, "the model has no critic head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runTool(t, runConvert, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr:\n%s\nwant it to say %q", code, tc.code, stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q on failure", stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("an output file was written")
			}
		})
	}
}

func TestConvertInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"convert", forkFixture("sh_lm.pt"), "-o", filepath.Join(t.TempDir(), "m.safetensors")}, nil, &out, &errb)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitInterrupted, errb.String())
	}
}

func TestConvertInspectHelp(t *testing.T) {
	for _, tc := range []struct {
		fn    func(context.Context, []string, io.Reader, io.Writer, io.Writer) int
		flags func() *flagSet
	}{
		{runConvert, func() *flagSet { fs, _ := convertFlags(); return fs }},
		{runInspect, func() *flagSet { fs, _ := inspectFlags(); return fs }},
	} {
		code, out, stderr := runTool(t, tc.fn, "--help")
		if code != exitOK {
			t.Fatalf("exit %d; stderr %q", code, stderr)
		}
		fs := tc.flags()
		n := 0
		fs.fs.VisitAll(func(f *flag.Flag) {
			n++
			i := strings.Index(out, "\n  --"+f.Name+" ")
			if j := strings.Index(out, "\n  --"+f.Name+"\n"); i < 0 {
				i = j
			}
			if i < 0 {
				t.Errorf("--%s is not in the help:\n%s", f.Name, out)
				return
			}
			lines := strings.SplitN(out[i+1:], "\n", 3)
			if len(lines) < 2 || !strings.Contains(lines[1], "(default: ") {
				t.Errorf("--%s: help line %q does not show the default", f.Name, lines[1])
			}
		})
		if n < 3 {
			t.Errorf("only %d flags", n)
		}
	}
}

func TestParseOperands(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		operands []string
		output   string
	}{
		{[]string{"a.pt", "-o", "x"}, []string{"a.pt"}, "x"},
		{[]string{"-o", "x", "a.pt"}, []string{"a.pt"}, "x"},
		{[]string{"a.pt", "b.pt", "--output=x"}, []string{"a.pt", "b.pt"}, "x"},
		{[]string{"-o", "x", "--", "-odd.pt"}, []string{"-odd.pt"}, "x"},
		{[]string{"a.pt", "--", "-o", "y"}, []string{"a.pt", "-o", "y"}, ""},
	} {
		fs, a := convertFlags()
		ops, err := parseOperands(fs, tc.args, nil)
		if err != nil || !slices.Equal(ops, tc.operands) || a.output != tc.output {
			t.Errorf("%q: operands %q output %q err %v; want %q, %q", tc.args, ops, a.output, err, tc.operands, tc.output)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 34080: "34,080", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestConvertRewritesModelFile: a remask/1 file as convert's input is
// rewritten with --card (the card of a model measured after conversion) and
// --dtype; the weights and everything else are kept bit for bit, and the
// checkpoint-only flags are refused rather than ignored.
func TestConvertRewritesModelFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.safetensors")
	if code, _, stderr := runTool(t, runConvert, forkFixture("sh_lm.pt"), "-o", src, "--dtype", "f16"); code != exitOK {
		t.Fatalf("convert: exit %d\n%s", code, stderr)
	}
	card := filepath.Join(dir, "card.md")
	if err := os.WriteFile(card, []byte("# measured card\n\njudge 0.8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.safetensors")
	code, stdout, stderr := runTool(t, runConvert, src, "-o", out, "--dtype", "f16", "--card", card)
	if code != exitOK || !strings.Contains(stdout, "rewritten as F16") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	a, err := model.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if b.Card != "# measured card\n\njudge 0.8\n" {
		t.Errorf("card %q", b.Card)
	}
	if a.Card == b.Card {
		t.Error("the old card was kept")
	}
	a.Card = b.Card
	var wa, wb bytes.Buffer
	if err := model.Write(&wa, a, model.F16); err != nil {
		t.Fatal(err)
	}
	if err := model.Write(&wb, b, model.F16); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wa.Bytes(), wb.Bytes()) {
		t.Error("rewriting changed more than the card")
	}
	fb, _ := os.ReadFile(out)
	if !bytes.Equal(fb, wb.Bytes()) {
		t.Error("the written file is not the model with its new card")
	}
	for _, tc := range []struct{ flag, val string }{{"--meta", forkFixture("meta.pkl")}, {"--calibration", forkFixture("calibration.json")}, {"--sampler-neighbors", "zeros"}} {
		o := filepath.Join(dir, "x.safetensors")
		code, _, stderr := runTool(t, runConvert, src, "-o", o, tc.flag, tc.val)
		if code != exitUsage || !strings.Contains(stderr, "applies to checkpoints; "+src+" is already a remask/1 model file") {
			t.Errorf("%s: exit %d, stderr %q", tc.flag, code, stderr)
		}
		if _, err := os.Stat(o); err == nil {
			t.Errorf("%s: an output was written", tc.flag)
		}
	}
	// The output is never the input.
	if code, _, stderr := runTool(t, runConvert, src, "-o", src, "--force"); code != exitUsage || !strings.Contains(stderr, "is the checkpoint itself") {
		t.Errorf("output = input: exit %d, stderr %q", code, stderr)
	}
}
