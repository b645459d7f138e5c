package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/gpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// `remask bench --job forward` times the trunk forward pass (embeddings,
// blocks, ln_f: engine.Net.Encode, waited for on the device) at one or more
// (batch x length) shapes and prints milliseconds per forward, the achieved
// TFLOP/s and, on the GPU backend, the dispatches per forward.
// tools/train/bench_forward.py times the same forward in PyTorch.

type benchArgs struct {
	job       string
	modelPath string
	backend   string
	limits    string
	shapes    string
	iters     int
	threads   int
	jsonOut   bool
	validate  string
	profile   int
	// The GPU kernel variants (gpu.Options, opt-in tuning knobs; gpuOptions).
	matmulTile string
	matmulDB   bool
	split      []string
	attention  string
	attnTile   string
	precision  string
	waveSlots  int
	waveDisp   string
	subgroups  string
	// sampling jobs (bench_loop.go)
	batch, length, iterations int
	reps                      int
	hostLoop                  bool
	baseline                  string
}

func benchFlags() (*flagSet, *benchArgs) {
	a := &benchArgs{}
	fs := newFlagSet("bench", "--job forward [flags]",
		"Times the trunk forward pass (Encode, waited for) and prints ms per forward and TFLOP/s.\n"+
			"Without --model it uses the standard shape: 6 layers, 6 heads, 384 wide, block 1024,\n"+
			"vocabulary 67, rotary, bidirectional, seeded random weights.")
	fs.group("Flags")
	fs.stringVar(&a.job, "job", "forward", "JOB", "what to time: forward (the trunk), standard (16 x 1024 x 15 generations) or small (1 x 256 x 15)")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "model file; default: the standard 6 x 384 shape with random weights")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto | cpu | gpu")
	fs.stringVar(&a.limits, "limits", "adapter", "WHICH", limitsHelp)
	fs.stringVar(&a.shapes, "shapes", "16x1024,1x256", "BxT,...", "batch x length shapes to time")
	fs.intVar(&a.iters, "iters", 10, "N", "timed forwards per shape (after one warm-up)")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core")
	fs.stringVar(&a.validate, "validate", "2x64", "BxT|none", "before timing, compare the backend's logits with the CPU backend's at this shape (bound 2e-3); none skips it")
	fs.intVar(&a.profile, "profile", 0, "N", "GPU backend: also time every trunk kernel on its own, N dispatches of it in one submission (0: off)")
	fs.stringVar(&a.matmulTile, "matmul-tile", "", "BMxBNxBKxTMxTN[db][n][wX][cL][kN]", "GPU backend: force this tiling of the generated matmul wherever it can run the shape; suffixes: db double-buffers it, n nests its shared tiles, wX arranges its threads in warp tiles X wide, cL has L invocations load each row, kN slices K N ways inside the workgroup (N groups of threads, each multiplying a slice of every K tile; the K split of --split mm still applies on top) (tuning; e.g. 128x64x16x8x4, 64x64x16x4x4db, 128x128x8x8x8nw8c2, 32x32x16x4x4k4)")
	fs.boolVar(&a.matmulDB, "matmul-db", false, "GPU backend: run the automatically chosen matmul tiles double-buffered (tuning; off by default until measured)")
	fs.listVar(&a.split, "split", "KINDS", "GPU backend: the split kernels: mm splits deep-K matmuls of small grids over K, attn splits attention of short sequences over keys, none turns both off; default both (measured faster at 1 x 256 on an H200, docs/performance.md)")
	fs.stringVar(&a.attention, "attention", "auto", "auto|tiled|rows", "GPU backend: the attention kernel; tiled is the tiled kernel for head size 64, rows the several-rows-per-thread kernel, which auto runs where a tile fits (else the one-row-per-thread kernel)")
	fs.stringVar(&a.attnTile, "attention-tile", "", "RxWGxBCxN[pf]", "GPU backend, --attention rows: force this tile (R query rows per thread, WG threads, key tiles of BC keys, N keys at a time; the suffix pf prefetches the next key tile into registers; e.g. 2x64x16x8, 1x64x32x8pf); default: the first that fits the device")
	fs.stringVar(&a.precision, "precision", "auto", "P", precisionHelp)
	fs.stringVar(&a.subgroups, "subgroups", "auto", "auto|off", "GPU backend: the subgroup reductions (LayerNorm, the draws): auto uses them where the device offers the subgroups feature (Dawn, browsers; not this build's wgpu-native), off never (docs/gpu.md)")
	fs.stringVar(&a.waveDisp, "wave-dispatch", "auto", "auto|indirect|direct", "GPU backend, sampler head: how a wave slot is dispatched: indirect (auto), sized by the device's wave plan; direct, a grid of every position with the slot in the params (for runtimes whose indirect dispatches are dear; docs/gpu.md)")
	fs.intVar(&a.waveSlots, "wave-slots", 0, "N", "GPU backend, sampler head: iterations whose schedule allows at most N waves encode them all and read nothing back; others read their wave count once (0: the default, docs/gpu.md)")
	fs.boolVar(&a.jsonOut, "json", false, "print JSON instead of a table")
	fs.group("Sampling jobs (standard, small)")
	fs.intVar(&a.reps, "reps", 3, "N", "timed generations per variant (after one warm-up); the median is reported")
	fs.intVar(&a.batch, "batch", 0, "B", "override the job's samples")
	fs.intVar(&a.length, "length", 0, "T", "override the job's sequence length")
	fs.intVar(&a.iterations, "iterations", 0, "N", "override the job's iterations")
	fs.boolVar(&a.hostLoop, "host-loop", false, "on a device-loop backend, also time the host loop (sampling on the CPU, networks on the device)")
	fs.stringVar(&a.baseline, "baseline", "none", "auto|none|CMD", "run the vectorized PyTorch loop in the same command: auto = python3 tools/train/bench_loop.py")
	return fs, a
}

// benchReport is what --json prints.
type benchReport struct {
	Backend    string           `json:"backend"`
	Precision  string           `json:"precision"` // of the trunk's matmuls: f32, or f16 (--precision)
	Model      string           `json:"model"`
	Validation *benchValidation `json:"validation,omitempty"`
	Results    []benchResult    `json:"results"`
}

// benchValidation is the check made before timing: the backend's logits
// against the CPU backend's on the same model and tokens.
type benchValidation struct {
	B         int     `json:"batch"`
	T         int     `json:"length"`
	MaxAbs    float64 `json:"max_abs_diff_logits"`
	Bound     float64 `json:"bound"`
	Reference string  `json:"reference"`
}

type benchResult struct {
	B          int              `json:"batch"`
	T          int              `json:"length"`
	Iters      int              `json:"iters"`
	MsPerFwd   float64          `json:"ms_per_forward"`
	GFLOP      float64          `json:"gflop_per_forward"`
	TFLOPS     float64          `json:"tflops"`
	Dispatches int              `json:"dispatches_per_forward,omitempty"`
	Submits    int              `json:"submits_per_forward,omitempty"`
	Profile    []gpu.KernelTime `json:"profile,omitempty"`
}

// benchTol bounds the validation: the golden tests' bound.
const benchTol = 2e-3

// benchTolF16 bounds the validation of --precision f16 (gpu.F16LogitBound).
const benchTolF16 = gpu.F16LogitBound

// precisionOf is the precision be runs the trunk in ("f32" but for a GPU
// backend opened with --precision f16).
func precisionOf(be engine.Backend) string {
	if g, ok := be.(*gpu.Backend); ok {
		return g.Precision()
	}
	return "f32"
}

// syncer is a Net that can wait for its queued device work (the GPU's).
type syncer interface{ Sync(context.Context) error }

// counter reports the kernel dispatches and command-buffer submissions of
// its latest Encode (the GPU backend).
type counter interface {
	Dispatches() int
	Submits() int
}

func runBench(ctx context.Context, c *cli, args []string) error {
	fs, a := benchFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	gopts, err := a.gpuOptions()
	if err != nil {
		return err
	}
	if _, ok := loopJobs[a.job]; ok {
		return runLoopBench(ctx, c, a, gopts)
	}
	if a.job != "forward" {
		return flagError("job", "%q is not a bench job; allowed: forward, standard, small", a.job)
	}
	if a.profile < 0 {
		return flagError("profile", "%d is out of range; 0 (off) or more", a.profile)
	}
	if a.iters < 1 {
		return flagError("iters", "%d is out of range; at least 1", a.iters)
	}
	shapes, err := parseShapes(a.shapes)
	if err != nil {
		return err
	}
	var vshape [][2]int
	if a.validate != "none" {
		if vshape, err = parseShapes(a.validate); err != nil || len(vshape) != 1 {
			return flagError("validate", "%q is not one BxT shape (e.g. 2x64) or none", a.validate)
		}
	}
	var m *model.Model
	if a.modelPath != "" {
		if m, err = loadModel("model", a.modelPath); err != nil {
			return err
		}
	} else if m, err = standardModel(1); err != nil {
		return err
	}
	budget, err := memoryBudget("max-memory", "auto")
	if err != nil {
		return err
	}
	for _, s := range append(shapes, vshape...) {
		if s[1] > m.Config.BlockSize {
			return flagError("shapes", "length %d exceeds the model's block_size %d", s[1], m.Config.BlockSize)
		}
		o := sampler.Defaults()
		o.MaxMemory = budget
		if err := sampler.CheckMemory(m, nil, nil, s[0], s[1], o); err != nil {
			return flagError("shapes", "%dx%d: %v", s[0], s[1], err)
		}
	}
	be, net, err := c.benchNet(ctx, a, m, gopts)
	if err != nil {
		return err
	}
	rep := benchReport{Backend: be.Name(), Precision: precisionOf(be), Model: m.Name()}
	if len(vshape) == 1 {
		bound := benchTol
		if rep.Precision == "f16" {
			bound = benchTolF16
		}
		v, err := benchValidate(ctx, net, vshape[0][0], vshape[0][1], bound)
		if err != nil {
			return err
		}
		rep.Validation = v
	}
	for _, s := range shapes {
		r, err := benchForward(ctx, net, s[0], s[1], a.iters)
		if err != nil {
			return err
		}
		if g, ok := net.(*gpu.Net); ok && a.profile > 0 {
			if r.Profile, err = g.Profile(ctx, benchTokens(net, s[0], s[1]), s[0], s[1], a.profile); err != nil {
				return err
			}
		}
		rep.Results = append(rep.Results, r)
	}
	if a.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(c.stdout, "backend: %s\nmodel: %s\n", rep.Backend, rep.Model)
	if v := rep.Validation; v != nil {
		fmt.Fprintf(c.stdout, "validated at %d x %d: logits within %.3g of the %s (bound %g)\n", v.B, v.T, v.MaxAbs, v.Reference, v.Bound)
	}
	for _, r := range rep.Results {
		fmt.Fprintf(c.stdout, "%4d x %-5d %9.2f ms/forward %8.3f TFLOP/s  (%.1f GFLOP", r.B, r.T, r.MsPerFwd, r.TFLOPS, r.GFLOP)
		if r.Dispatches > 0 {
			fmt.Fprintf(c.stdout, ", %d dispatches, %d submits", r.Dispatches, r.Submits)
		}
		fmt.Fprintln(c.stdout, ")")
		for _, k := range r.Profile {
			fmt.Fprintf(c.stdout, "    %-34s %9.3f ms  grid %s\n", k.Name, k.Ms, k.Grid)
		}
	}
	return nil
}

// benchTokens are the seeded random tokens of a B x T bench forward.
func benchTokens(net engine.Net, B, T int) []int32 {
	V := net.Model().Config.VocabSize
	rng := rand.New(rand.NewPCG(uint64(B), uint64(T)))
	tokens := make([]int32, B*T)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(V))
	}
	return tokens
}

// benchValidate compares net's logits at B x T with the CPU backend's and
// fails when they differ by more than bound (benchTol; benchTolF16 for
// --precision f16): a timing of wrong results is worthless.
func benchValidate(ctx context.Context, net engine.Net, B, T int, bound float64) (*benchValidation, error) {
	m := net.Model()
	tokens := benchTokens(net, B, T)
	ref, err := cpu.New(0).Load(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("validation: loading %s on the CPU backend: %w", m.Name(), err)
	}
	n := B * T * m.Config.OutputSize()
	logits := func(net engine.Net) ([]float32, error) {
		h, err := net.Encode(ctx, tokens, B, T)
		if err != nil {
			return nil, err
		}
		out := make([]float32, n)
		return out, net.Logits(ctx, h, out)
	}
	got, err := logits(net)
	if err != nil {
		return nil, fmt.Errorf("validation at %d x %d: %w", B, T, err)
	}
	want, err := logits(ref)
	if err != nil {
		return nil, fmt.Errorf("validation at %d x %d (CPU backend): %w", B, T, err)
	}
	v := &benchValidation{B: B, T: T, Bound: bound, Reference: "CPU backend"}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > v.MaxAbs {
			v.MaxAbs = d
		}
	}
	if !(v.MaxAbs <= bound) {
		return v, fmt.Errorf("validation at %d x %d: the logits differ from the CPU backend's by up to %g (bound %g); not timing a wrong forward", B, T, v.MaxAbs, bound)
	}
	return v, nil
}

func benchForward(ctx context.Context, net engine.Net, B, T, iters int) (benchResult, error) {
	tokens := benchTokens(net, B, T)
	wait := func() error {
		if s, ok := net.(syncer); ok {
			return s.Sync(ctx)
		}
		return nil
	}
	// warm-up: pipelines, buffers and bind groups are made here
	if _, err := net.Encode(ctx, tokens, B, T); err != nil {
		return benchResult{}, err
	}
	if err := wait(); err != nil {
		return benchResult{}, err
	}
	start := time.Now()
	for i := 0; i < iters; i++ {
		if _, err := net.Encode(ctx, tokens, B, T); err != nil {
			return benchResult{}, err
		}
	}
	if err := wait(); err != nil {
		return benchResult{}, err
	}
	el := time.Since(start)
	r := benchResult{B: B, T: T, Iters: iters}
	r.MsPerFwd = float64(el.Microseconds()) / 1000 / float64(iters)
	r.GFLOP = forwardFLOP(&net.Model().Config, B, T) / 1e9
	r.TFLOPS = r.GFLOP / r.MsPerFwd
	if c, ok := net.(counter); ok {
		r.Dispatches, r.Submits = c.Dispatches(), c.Submits()
	}
	return r, nil
}

// forwardFLOP counts the multiply-adds (x2) of the trunk: per layer the four
// linear layers (24·B·T·C²) and attention's two products (4·B·T²·C, half
// when causal). LayerNorm, GELU and softmax are left out.
func forwardFLOP(cfg *model.Config, B, T int) float64 {
	BT, C := float64(B*T), float64(cfg.NEmbd)
	attn := 4 * float64(B) * float64(T) * float64(T) * C
	if cfg.Attention == model.Causal {
		attn /= 2
	}
	return float64(cfg.NLayer) * (24*BT*C*C + attn)
}

func parseShapes(s string) ([][2]int, error) {
	var out [][2]int
	for _, item := range strings.Split(s, ",") {
		bs, ts, ok := strings.Cut(strings.TrimSpace(item), "x")
		b, err1 := strconv.Atoi(bs)
		t, err2 := strconv.Atoi(ts)
		if !ok || err1 != nil || err2 != nil || b < 1 || t < 1 {
			return nil, flagError("shapes", "%q is not BxT with B, T >= 1 (e.g. 16x1024)", item)
		}
		out = append(out, [2]int{b, t})
	}
	return out, nil
}

// standardModel is the shipped models' shape (model.Standard) with seeded
// random weights.
func standardModel(seed uint64) (*model.Model, error) {
	return model.Random(model.Standard(), seed, 0.02)
}

// gpuOptions are the GPU kernel variants of the bench flags, each checked
// with an error naming its flag.
func (a *benchArgs) gpuOptions() (gpu.Options, error) {
	do, err := deviceOptions(a.backend, a.limits, a.precision)
	if err != nil {
		return gpu.Options{}, err
	}
	o := gpu.Options{MatmulTile: a.matmulTile, MatmulDoubleBuffer: a.matmulDB, Split: a.split, Attention: a.attention, AttentionTile: a.attnTile, Limits: do.Limits, Precision: do.Precision, WaveSlots: a.waveSlots, WaveDispatch: a.waveDisp, Subgroups: a.subgroups}
	for _, c := range []struct {
		flag string
		o    gpu.Options
	}{
		{"matmul-tile", gpu.Options{MatmulTile: o.MatmulTile}},
		{"split", gpu.Options{Split: o.Split}},
		{"attention", gpu.Options{Attention: o.Attention}},
		{"attention-tile", gpu.Options{Attention: o.Attention, AttentionTile: o.AttentionTile}},
		{"wave-slots", gpu.Options{WaveSlots: o.WaveSlots}},
		{"wave-dispatch", gpu.Options{WaveDispatch: o.WaveDispatch}},
		{"subgroups", gpu.Options{Subgroups: o.Subgroups}},
	} {
		if err := c.o.Check(); err != nil {
			return gpu.Options{}, flagError(c.flag, "%v", err)
		}
	}
	if a.backend == "cpu" {
		for _, f := range []struct {
			flag string
			set  bool
		}{{"matmul-tile", o.MatmulTile != ""}, {"matmul-db", o.MatmulDoubleBuffer}, {"split", len(o.Split) > 0}, {"attention", o.Attention != "auto" && o.Attention != ""}, {"attention-tile", o.AttentionTile != ""}, {"wave-slots", o.WaveSlots != 0}, {"wave-dispatch", o.WaveDispatch != "auto" && o.WaveDispatch != ""}, {"subgroups", o.Subgroups != "auto" && o.Subgroups != ""}} {
			if f.set {
				return gpu.Options{}, flagError(f.flag, "selects a GPU kernel variant; --backend cpu has none (use --backend gpu)")
			}
		}
	}
	return o, nil
}

// benchNet opens the backend that a names, with the GPU kernel options gopts (its note, such as why it fell
// back to the CPU, on stderr) and loads m on it.
func (c *cli) benchNet(ctx context.Context, a *benchArgs, m *model.Model, gopts gpu.Options) (engine.Backend, engine.Net, error) {
	be, note, err := openBackend(ctx, a.backend, a.threads, gopts)
	if err != nil {
		return nil, nil, err
	}
	if note != "" {
		fmt.Fprintf(c.stderr, "backend: %s (%s)\n", be.Name(), note)
	}
	net, err := be.Load(ctx, m)
	if err != nil {
		return nil, nil, fmt.Errorf("loading %s on the %s backend: %w", m.Name(), be.Name(), err)
	}
	return be, net, nil
}
