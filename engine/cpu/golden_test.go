package cpu

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/golden"
)

// goldenDir holds the PyTorch fixtures written by tools/train/make_fixtures.py
// (./build.sh goldens): NAME.safetensors plus NAME.json with the inputs and
// the outputs of the PyTorch model, computed in float64.
const goldenDir = "../../testdata/golden"

// goldenTol is the largest absolute error allowed against PyTorch. The
// fixtures are tiny (C = 32), so float32 arithmetic stays far below it.
const goldenTol = 1e-4

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden fixtures in %s: run ./build.sh goldens (tools/train/make_fixtures.py) to write them", goldenDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			g, err := golden.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(filepath.Join(goldenDir, g.Model))
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Kind != g.Kind {
				t.Fatalf("%s says kind %q, the model file %q", file, g.Kind, m.Config.Kind)
			}
			if g.Logits == nil && g.Kind != model.SequenceScorer {
				t.Errorf("%s: a %s fixture without logits", file, g.Kind)
			}
			if (g.CriticLogits != nil) != m.Config.HasCritic() {
				t.Errorf("%s: critic_logits present = %v, model has a critic head = %v", file, g.CriticLogits != nil, m.Config.HasCritic())
			}
			if (g.Sampler != nil) != m.Config.HasSampler() {
				t.Errorf("%s: sampler present = %v, model has a sampler head = %v", file, g.Sampler != nil, m.Config.HasSampler())
			}
			if (g.Evaluation != nil) != (g.Kind == model.SequenceScorer) {
				t.Errorf("%s: evaluation present = %v for a %s", file, g.Evaluation != nil, g.Kind)
			}
			net := mustLoad(t, m, 2)
			tokens, B, T := g.Batch()
			ctx := context.Background()
			h, err := net.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			outs := g.Outputs()
			if len(outs) == 0 {
				t.Errorf("%s: no outputs to compare", file)
			}
			for _, o := range outs {
				got := make([]float32, len(o.Want))
				if err := o.Run(ctx, net, h, got); err != nil {
					t.Fatalf("%s: %v", o.Name, err)
				}
				d, at := golden.MaxAbsDiff(got, o.Want)
				t.Logf("%s: max abs error %.3g over %d values", o.Name, d, len(o.Want))
				if d > goldenTol {
					t.Errorf("%s: max abs error %.3g > %g at index %d (got %v, PyTorch %v)", o.Name, d, goldenTol, at, got[at], o.Want[at])
				}
			}
		})
	}
}
