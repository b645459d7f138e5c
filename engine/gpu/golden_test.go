package gpu

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
)

// goldenDir holds the PyTorch fixtures (tools/train/make_fixtures.py).
const goldenDir = "../../testdata/golden"

// goldenTol is the bound on the GPU forward with f32 compute: max
// abs error against PyTorch (float64) and against engine/cpu. Observed
// errors are around 1e-6 (see the test log).
const goldenTol = 2e-3

type golden struct {
	Model        string        `json:"model"`
	Kind         model.Kind    `json:"kind"`
	Tokens       [][]int32     `json:"tokens"`
	Logits       [][][]float64 `json:"logits"`
	CriticLogits [][]float64   `json:"critic_logits"`
	Sampler      *struct {
		Pos    []int32     `json:"pos"`
		Left   []int32     `json:"left"`
		Right  []int32     `json:"right"`
		Logits [][]float64 `json:"logits"`
	} `json:"sampler"`
	Evaluation []float64 `json:"evaluation"`
}

func flat2(v [][]float64) []float64 {
	var out []float64
	for _, r := range v {
		out = append(out, r...)
	}
	return out
}

// TestGolden runs every golden model on the GPU and compares every output
// with PyTorch and with the CPU reference backend.
func TestGolden(t *testing.T) {
	be := testBackend(t)
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden fixtures in %s (%v)", goldenDir, err)
	}
	ctx := context.Background()
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var g golden
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(filepath.Join(goldenDir, g.Model))
			if err != nil {
				t.Fatal(err)
			}
			gn, err := be.Load(m)
			if err != nil {
				t.Fatal(err)
			}
			defer gn.(*Net).Close()
			cn, err := cpu.New(1).Load(m)
			if err != nil {
				t.Fatal(err)
			}
			B, T := len(g.Tokens), len(g.Tokens[0])
			var tokens []int32
			for _, r := range g.Tokens {
				tokens = append(tokens, r...)
			}
			gh, err := gn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := cn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			compare := func(what string, n int, run func(engine.Net, engine.Hidden, []float32) error, want []float64) {
				t.Helper()
				checked++
				got := make([]float32, n)
				if err := run(gn, gh, got); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				ref := make([]float32, n)
				if err := run(cn, ch, ref); err != nil {
					t.Fatalf("%s (cpu): %v", what, err)
				}
				if len(want) != n {
					t.Fatalf("%s: golden has %d values, want %d", what, len(want), n)
				}
				dp, at := maxAbsDiff(got, want)
				dc, atc := maxAbsDiff(got, f64(ref))
				t.Logf("%s: max abs error %.3g vs PyTorch, %.3g vs CPU, over %d values (%s dtype %s)", what, dp, dc, n, m.Config.Kind, m.DType)
				if dp > goldenTol {
					t.Errorf("%s: max abs error vs PyTorch %.3g > %g at %d (gpu %v, PyTorch %v)", what, dp, goldenTol, at, got[at], want[at])
				}
				if dc > goldenTol {
					t.Errorf("%s: max abs error vs CPU %.3g > %g at %d (gpu %v, cpu %v)", what, dc, goldenTol, atc, got[atc], ref[atc])
				}
			}
			if g.Logits != nil {
				var want []float64
				for _, r := range g.Logits {
					want = append(want, flat2(r)...)
				}
				compare("logits", B*T*m.Config.OutputSize(), func(n engine.Net, h engine.Hidden, d []float32) error { return n.Logits(ctx, h, d) }, want)
			}
			if g.CriticLogits != nil {
				compare("critic logits", B*T, func(n engine.Net, h engine.Hidden, d []float32) error { return n.CriticLogits(ctx, h, d) }, flat2(g.CriticLogits))
			}
			if s := g.Sampler; s != nil {
				compare("sampler logits", len(s.Pos)*m.Config.VocabSize, func(n engine.Net, h engine.Hidden, d []float32) error {
					return n.SamplerLogits(ctx, h, s.Pos, s.Left, s.Right, d)
				}, flat2(s.Logits))
			}
			if g.Kind == model.SequenceScorer {
				compare("evaluation", B, func(n engine.Net, h engine.Hidden, d []float32) error { return n.JudgeEval(ctx, h, d) }, g.Evaluation)
			}
			if checked == 0 {
				t.Errorf("%s: no outputs compared", file)
			}
		})
	}
}
