package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
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
	shapes    string
	iters     int
	threads   int
	jsonOut   bool
}

func benchFlags() (*flagSet, *benchArgs) {
	a := &benchArgs{}
	fs := newFlagSet("bench", "--job forward [flags]",
		"Times the trunk forward pass (Encode, waited for) and prints ms per forward and TFLOP/s.\n"+
			"Without --model it uses the standard shape: 6 layers, 6 heads, 384 wide, block 1024,\n"+
			"vocabulary 67, rotary, bidirectional, seeded random weights.")
	fs.group("Flags")
	fs.stringVar(&a.job, "job", "forward", "JOB", "what to time: forward")
	fs.stringVar(&a.modelPath, "model", "", "FILE", "model file; default: the standard 6 x 384 shape with random weights")
	fs.stringVar(&a.backend, "backend", "auto", "NAME", "compute backend: auto | cpu | gpu")
	fs.stringVar(&a.shapes, "shapes", "16x1024,1x256", "BxT,...", "batch x length shapes to time")
	fs.intVar(&a.iters, "iters", 10, "N", "timed forwards per shape (after one warm-up)")
	fs.intVar(&a.threads, "threads", 0, "N", "CPU backend threads; 0 = one per CPU core")
	fs.boolVar(&a.jsonOut, "json", false, "print JSON instead of a table")
	return fs, a
}

type benchResult struct {
	Backend    string  `json:"backend"`
	Model      string  `json:"model"`
	B          int     `json:"batch"`
	T          int     `json:"length"`
	Iters      int     `json:"iters"`
	MsPerFwd   float64 `json:"ms_per_forward"`
	GFLOP      float64 `json:"gflop_per_forward"`
	TFLOPS     float64 `json:"tflops"`
	Dispatches int     `json:"dispatches_per_forward,omitempty"`
}

// syncer is a Net that can wait for its queued device work (the GPU's).
type syncer interface{ Sync(context.Context) error }

// dispatcher reports the kernel dispatches of its latest Encode.
type dispatcher interface{ Dispatches() int }

func runBench(ctx context.Context, c *cli, args []string) error {
	fs, a := benchFlags()
	if err := fs.parse(args, c.stdout); err != nil {
		return err
	}
	if a.job != "forward" {
		return flagError("job", "%q is not a bench job; allowed: forward", a.job)
	}
	if a.iters < 1 {
		return flagError("iters", "%d is out of range; at least 1", a.iters)
	}
	shapes, err := parseShapes(a.shapes)
	if err != nil {
		return err
	}
	var m *model.Model
	if a.modelPath != "" {
		if m, err = loadModel("model", a.modelPath); err != nil {
			return err
		}
	} else if m, err = standardModel(1); err != nil {
		return err
	}
	for _, s := range shapes {
		if s[1] > m.Config.BlockSize {
			return flagError("shapes", "length %d exceeds the model's block_size %d", s[1], m.Config.BlockSize)
		}
	}
	be, note, err := newBackend(a.backend, a.threads)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(c.stderr, "backend: %s (%s)\n", be.Name(), note)
	}
	net, err := be.Load(m)
	if err != nil {
		return fmt.Errorf("loading %s on the %s backend: %w", m.Name(), be.Name(), err)
	}
	var results []benchResult
	for _, s := range shapes {
		r, err := benchForward(ctx, net, s[0], s[1], a.iters)
		if err != nil {
			return err
		}
		r.Backend, r.Model = be.Name(), m.Name()
		results = append(results, r)
	}
	if a.jsonOut {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	fmt.Fprintf(c.stdout, "backend: %s\nmodel: %s\n", be.Name(), m.Name())
	for _, r := range results {
		fmt.Fprintf(c.stdout, "%4d x %-5d %9.2f ms/forward %8.3f TFLOP/s  (%.1f GFLOP", r.B, r.T, r.MsPerFwd, r.TFLOPS, r.GFLOP)
		if r.Dispatches > 0 {
			fmt.Fprintf(c.stdout, ", %d dispatches", r.Dispatches)
		}
		fmt.Fprintln(c.stdout, ")")
	}
	return nil
}

func benchForward(ctx context.Context, net engine.Net, B, T, iters int) (benchResult, error) {
	V := net.Model().Config.VocabSize
	rng := rand.New(rand.NewPCG(uint64(B), uint64(T)))
	tokens := make([]int32, B*T)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(V))
	}
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
	if d, ok := net.(dispatcher); ok {
		r.Dispatches = d.Dispatches()
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

// standardModel is the 6 x 384 benchmark model with seeded random weights
// (N(0, 0.02) matrices, unit LayerNorms, zero biases).
func standardModel(seed uint64) (*model.Model, error) {
	cfg := model.Config{Kind: model.LanguageModel, NLayer: 6, NHead: 6, NEmbd: 384, BlockSize: 1024, VocabSize: 67,
		Bias: true, Attention: model.Bidirectional, PositionEncoding: model.Rotary, RopeBase: 10000, LayerNormEps: 1e-5}
	mask, pad := 65, 66
	vocab := model.Vocab{Type: "char", MaskTokenID: &mask, PadTokenID: &pad, BaseVocabSize: 65}
	for i := 0; i < 65; i++ {
		vocab.Tokens = append(vocab.Tokens, string(rune(0x100+i)))
	}
	vocab.Tokens = append(vocab.Tokens, "[MASK]", "[PAD]")
	m := &model.Model{Path: "standard 6x384 (random weights)", Config: cfg, Vocab: vocab, DType: "F32", Tensors: map[string]*model.Tensor{}}
	rng := rand.New(rand.NewPCG(seed, 0xbe7c))
	for _, s := range model.Expected(&m.Config) {
		t := &model.Tensor{Shape: s.Shape}
		t.Data = make([]float32, t.Numel())
		switch {
		case strings.HasSuffix(s.Name, ".bias"):
		case strings.Contains(s.Name, "ln_"):
			for i := range t.Data {
				t.Data[i] = 1
			}
		default:
			for i := range t.Data {
				t.Data[i] = float32(0.02 * rng.NormFloat64())
			}
		}
		m.Tensors[s.Name] = t
	}
	m.Tensors["lm_head.weight"] = m.Tensors["transformer.wte.weight"]
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bench: the standard model does not validate: %w", err)
	}
	return m, nil
}
