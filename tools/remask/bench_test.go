package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/remask/remask/engine/gpu"
)

func TestParseShapes(t *testing.T) {
	got, err := parseShapes("16x1024, 1x256")
	if err != nil || len(got) != 2 || got[0] != [2]int{16, 1024} || got[1] != [2]int{1, 256} {
		t.Fatalf("parseShapes: %v, %v", got, err)
	}
	for _, bad := range []string{"", "16", "0x5", "3x", "ax4", "2x-1"} {
		if _, err := parseShapes(bad); err == nil {
			t.Errorf("parseShapes(%q): no error", bad)
		}
	}
}

// TestForwardFLOP checks the count of the standard 16 x 1024 forward by
// hand: 6·(24·16384·384² + 4·16·1024²·384) = 404.2 GFLOP.
func TestForwardFLOP(t *testing.T) {
	m, err := standardModel(1)
	if err != nil {
		t.Fatal(err)
	}
	want := 6 * (24*16384*384.0*384 + 4*16*1024*1024*384.0)
	if got := forwardFLOP(&m.Config, 16, 1024); got != want {
		t.Fatalf("forwardFLOP = %g, want %g", got, want)
	}
}

func decodeBench(t *testing.T, out string) benchReport {
	t.Helper()
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json printed no report: %v\n%s", err, out)
	}
	return rep
}

func TestBenchCPU(t *testing.T) {
	code, out, errOut := runCLI(t, "", "bench", "--job", "forward", "--backend", "cpu", "--shapes", "1x8", "--validate", "1x4", "--iters", "1", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rep := decodeBench(t, out)
	if rep.Precision != "f32" {
		t.Errorf("precision %q, want f32", rep.Precision)
	}
	if rep.Validation == nil || rep.Validation.B != 1 || rep.Validation.T != 4 || rep.Validation.MaxAbs > benchTol {
		t.Errorf("validation %+v", rep.Validation)
	}
	if len(rep.Results) != 1 || rep.Results[0].MsPerFwd <= 0 || rep.Results[0].GFLOP <= 0 {
		t.Errorf("results %+v", rep.Results)
	}
	code, _, errOut = runCLI(t, "", "bench", "--backend", "cpu", "--shapes", "1x8", "--validate", "2x2x2")
	if code == exitOK || !strings.Contains(errOut, "--validate") {
		t.Errorf("a bad --validate: exit %d, %q", code, errOut)
	}
}

// TestBenchGPU runs the bench on the WebGPU backend (lavapipe in CI) at a
// small shape: the validation against the CPU must pass, and one forward of
// the standard model with the default kernels (the splits on) must be 61
// dispatches in one submission, 49 with --split none: at 1 x 16 the second
// kernel of every K-split matmul adds 4 a layer (engine/gpu kernels.go
// kSplits), of which the two c_proj reduces take in the LayerNorm after
// them (addnorm.wgsl), 2 a layer net; the first kernel is the embedding
// fused with h.0.ln_1 (engine/gpu TestStandardModelVariants).
func TestBenchGPU(t *testing.T) {
	g, err := gpu.New(t.Context(), gpu.Options{})
	if err != nil {
		if errors.Is(err, gpu.ErrNoAdapter) && os.Getenv("CI") != "true" {
			t.Skipf("no WebGPU adapter (required in CI): %v", err)
		}
		t.Fatal(err)
	}
	g.Close()
	for _, c := range []struct {
		flags      []string
		dispatches int
	}{{nil, 61}, {[]string{"--split", "none"}, 49}, {[]string{"--split", "attn,mm", "--matmul-db", "--attention", "tiled"}, 61}, {[]string{"--split", "none", "--attention", "rows", "--attention-tile", "2x32x16x8"}, 49}} {
		args := append([]string{"bench", "--job", "forward", "--backend", "gpu", "--shapes", "1x16", "--validate", "1x8", "--iters", "1", "--profile", "1", "--json"}, c.flags...)
		code, out, errOut := runCLI(t, "", args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", c.flags, code, errOut)
		}
		rep := decodeBench(t, out)
		if rep.Validation == nil || rep.Validation.MaxAbs > benchTol {
			t.Errorf("%v: validation %+v", c.flags, rep.Validation)
		}
		if len(rep.Results) != 1 {
			t.Fatalf("%v: results %+v", c.flags, rep.Results)
		}
		r := rep.Results[0]
		if r.Dispatches != c.dispatches || r.Submits != 1 {
			t.Errorf("%v: %d dispatches and %d submits per forward, want %d and 1", c.flags, r.Dispatches, r.Submits, c.dispatches)
		}
		if len(r.Profile) != c.dispatches || r.Profile[0].Name != "embed + h.0.ln_1" || r.Profile[1].Name != "h.0.attn.c_attn" || r.Profile[1].Ms <= 0 {
			t.Errorf("%v: profile %+v", c.flags, r.Profile)
		}
	}
}

// TestBenchGPUOptionFlags: a bad GPU kernel flag is a usage error naming
// the flag and the accepted values, before any device is opened, and the
// flags are refused with --backend cpu, which has no such kernels.
func TestBenchGPUOptionFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--matmul-tile", "64x64"}, `--matmul-tile: gpu: matmul tile "64x64" is not BMxBNxBKxTMxTN[db]`},
		{[]string{"--split", "attn,matmul"}, `--split: gpu: split "matmul" is not a split kernel kind (want attn or mm, or none)`},
		{[]string{"--attention", "flash"}, `--attention: gpu: attention "flash" is not an attention kernel (want auto, tiled, rows)`},
		{[]string{"--backend", "cpu", "--split", "mm"}, "--split: selects a GPU kernel variant; --backend cpu has none"},
		{[]string{"--backend", "cpu", "--matmul-db"}, "--matmul-db: selects a GPU kernel variant"},
		{[]string{"--backend", "cpu", "--attention", "tiled"}, "--attention: selects a GPU kernel variant"},
		{[]string{"--backend", "cpu", "--attention", "rows"}, "--attention: selects a GPU kernel variant"},
		{[]string{"--attention-tile", "2x64x16x8"}, `--attention-tile: gpu: attention tile "2x64x16x8" applies to the attention kernel "rows" only`},
		{[]string{"--attention", "rows", "--attention-tile", "2x64x16"}, `--attention-tile: gpu: shaders: attention tile "2x64x16" is not RxWGxBCxN`},
		{[]string{"--attention", "rows", "--attention-tile", "2x64x16x3"}, `--attention-tile: gpu: shaders: attention tile 2x64x16x3: the key tile BC = 16 must be a multiple of N = 3`},
		{[]string{"--precision", "fp16"}, `--precision: gpu: precision "fp16" is not a precision (want auto, f32, f16)`},
		{[]string{"--backend", "cpu", "--precision", "f16"}, "--precision: f16 runs on the GPU backend only"},
		{[]string{"--wave-slots", "-1"}, "--wave-slots: gpu: wave slots -1 is negative"},
		{[]string{"--backend", "cpu", "--wave-slots", "4"}, "--wave-slots: selects a GPU kernel variant"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"bench", "--job", "forward", "--shapes", "1x8", "--validate", "none"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want a usage error with %q", c.args, code, errOut, c.want)
		}
	}
}

// TestBenchPrecisionF16: --precision f16 either runs (where the device
// compiles f16: the report says f16 and the validation holds the f16
// bound) or fails with the device's reason, with --backend gpu and with
// --backend auto alike (auto never falls back to the f32 CPU backend when
// f16 was asked for). On lavapipe through this build's wgpu-native it
// fails: its naga has no f16 (docs/gpu.md, "Precision").
func TestBenchPrecisionF16(t *testing.T) {
	g, err := gpu.New(t.Context(), gpu.Options{})
	if err != nil {
		if errors.Is(err, gpu.ErrNoAdapter) && os.Getenv("CI") != "true" {
			t.Skipf("no WebGPU adapter (required in CI): %v", err)
		}
		t.Fatal(err)
	}
	g.Close()
	g, f16err := gpu.New(t.Context(), gpu.Options{Precision: "f16"})
	if f16err == nil {
		g.Close()
	}
	for _, backend := range []string{"gpu", "auto"} {
		code, out, errOut := runCLI(t, "", "bench", "--job", "forward", "--backend", backend, "--precision", "f16", "--shapes", "1x16", "--validate", "1x8", "--iters", "1", "--json")
		if f16err != nil {
			if code == exitOK || !strings.Contains(errOut, "precision f16") || !strings.Contains(errOut, "use precision f32") {
				t.Errorf("--backend %s --precision f16 where the device refuses f16 (%v): exit %d, %q", backend, f16err, code, errOut)
			}
			continue
		}
		if code != exitOK {
			t.Fatalf("--backend %s --precision f16: exit %d: %s", backend, code, errOut)
		}
		rep := decodeBench(t, out)
		if rep.Precision != "f16" || !strings.HasSuffix(rep.Backend, ", f16)") || rep.Validation == nil || rep.Validation.Bound != gpu.F16LogitBound || rep.Validation.MaxAbs > gpu.F16LogitBound {
			t.Errorf("--backend %s --precision f16: %+v, validation %+v", backend, rep, rep.Validation)
		}
	}
}

// TestBenchTextAgreement runs the text comparison of --precision f16
// (textAgreement) on a generation made in f32 on the same adapter: the
// device loop is deterministic for a seed, so every character must agree.
// It covers the comparison's plumbing on lavapipe, where f16 itself is
// refused (TestBenchPrecisionF16).
func TestBenchTextAgreement(t *testing.T) {
	g, err := gpu.New(t.Context(), gpu.Options{})
	if err != nil {
		if errors.Is(err, gpu.ErrNoAdapter) && os.Getenv("CI") != "true" {
			t.Skipf("no WebGPU adapter (required in CI): %v", err)
		}
		t.Fatal(err)
	}
	defer g.Close()
	m, err := loadModel("model", goldenPath("lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	net, err := g.Load(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	job := loopJob{name: "tiny", B: 2, T: 16, N: 2}
	var results []loopResult
	for _, v := range []loopVariant{{Sampler: true, Loop: "device"}, {Sampler: false, Compat: "critic-on-input", Loop: "device"}} {
		r, err := benchLoop(t.Context(), net, job, v, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len([]rune(r.text)) != job.B*job.T {
			t.Fatalf("%+v: text %q, want %d characters", v, r.text, job.B*job.T)
		}
		results = append(results, r)
	}
	c := &cli{stdout: io.Discard, stderr: io.Discard}
	if err := textAgreement(t.Context(), c, &benchArgs{}, gpu.Options{}, m, job, results); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.TextAgreementF32 == nil || *r.TextAgreementF32 != 1 {
			t.Errorf("%+v: agreement of an f32 generation with itself = %v, want 1", r.loopVariant, r.TextAgreementF32)
		}
	}
}

// TestBenchLoopGPUCounts: the generation jobs report the device work per
// iteration for every variant, zeros included (issue 15): with ratio
// remasking and no observer every iteration of the device loop is one
// submission that reads nothing back, with the sampler head too (its waves
// counted); --wave-slots 1 makes the sampler-head iterations read their
// wave count (two submissions).
func TestBenchLoopGPUCounts(t *testing.T) {
	g, err := gpu.New(t.Context(), gpu.Options{})
	if err != nil {
		if errors.Is(err, gpu.ErrNoAdapter) && os.Getenv("CI") != "true" {
			t.Skipf("no WebGPU adapter (required in CI): %v", err)
		}
		t.Fatal(err)
	}
	g.Close()
	model := goldenPath("lm_rope_bidir_bias.safetensors")
	for _, slots := range []string{"0", "1"} {
		code, out, errOut := runCLI(t, "", "bench", "--job", "small", "--backend", "gpu", "--model", model, "--length", "24",
			"--iterations", "3", "--reps", "1", "--wave-slots", slots, "--json")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep struct {
			Results []map[string]any `json:"results"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if len(rep.Results) != 4 {
			t.Fatalf("%d results, want 4 variants: %s", len(rep.Results), out)
		}
		for _, r := range rep.Results {
			sub, okS := r["submits_per_iteration"].(float64)
			disp, okD := r["dispatches_per_iteration"].(float64)
			read, okR := r["read_bytes_per_iteration"].(float64)
			waves, okW := r["waves"].(float64)
			if !okS || !okD || !okR || !okW {
				t.Fatalf("--wave-slots %s: a per-iteration count is missing: %v", slots, r)
			}
			t.Logf("--wave-slots %s, sampler %v, compat %q: %.2f submits, %.0f dispatches, %.0f bytes read per iteration, %.0f waves", slots, r["sampler"], r["compat"], sub, disp, read, waves)
			// Where the host's time went: every phase, each within the
			// generation's wall time; the tokens and the metrics (the
			// bench's metric is computed on the device) in one phase,
			// their one read (engine.Loop.Finish).
			host, _ := r["device_host_ms"].(map[string]any)
			secs, _ := r["seconds"].(float64)
			phases := []string{"new loop", "steps", "tokens+metrics"}
			for _, k := range phases {
				if v, ok := host[k].(float64); !ok || v < 0 || v > 1e3*secs {
					t.Errorf("device_host_ms[%q] = %v, want 0 to %.1f ms (the generation's wall time): %v", k, host[k], 1e3*secs, host)
				}
			}
			if len(host) != len(phases) {
				t.Errorf("device_host_ms has phases %v, want exactly %q", host, phases)
			}
			sampler := r["sampler"] == true
			if sampler != (waves > 0) {
				t.Errorf("sampler %v: %v waves", sampler, waves)
			}
			if slots == "1" && sampler {
				if sub <= 1 || read == 0 {
					t.Errorf("--wave-slots 1: %.2f submits and %.0f bytes read per iteration; want the wave count read", sub, read)
				}
				continue
			}
			if sub != 1 || read != 0 || disp <= 0 {
				t.Errorf("--wave-slots %s, sampler %v: %.2f submits, %.0f dispatches, %.0f bytes read per iteration; want 1 submit and nothing read", slots, sampler, sub, disp, read)
			}
		}
	}
}
