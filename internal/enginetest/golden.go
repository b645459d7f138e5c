package enginetest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/golden"
)

// GoldenTol is the largest absolute error the suite allows against the
// PyTorch fixtures (computed in float64) and between two backends. The
// fixtures are tiny (C = 32): float32 compute stays near 1e-6 on the CPU
// backend and on lavapipe (the tests log the errors they see), so 1e-4
// leaves a wide margin for other devices' summation orders while still
// catching a wrong kernel, whose errors are of the order of the values.
const GoldenTol = 1e-4

// Golden runs every fixture of dir (NAME.json with NAME.safetensors, written
// by tools/train/make_fixtures.py) on be and compares every output the
// fixture holds with PyTorch's; with ref not nil, also with ref's outputs
// on the same tokens (the CPU reference, for another backend).
func Golden(t *testing.T, be engine.Backend, ref engine.Backend, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden fixtures in %s: run ./build.sh goldens (tools/train/make_fixtures.py) to write them", dir)
	}
	ctx := context.Background()
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			g, err := golden.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(filepath.Join(dir, g.Model))
			if err != nil {
				t.Fatal(err)
			}
			checkFixture(t, file, g, m)
			net := Load(t, be, m)
			tokens, B, T := g.Batch()
			h, err := net.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			var refNet engine.Net
			var refH engine.Hidden
			if ref != nil {
				refNet = Load(t, ref, m)
				if refH, err = refNet.Encode(ctx, tokens, B, T); err != nil {
					t.Fatalf("%s: %v", ref.Name(), err)
				}
			}
			for _, o := range g.Outputs() {
				got := make([]float32, len(o.Want))
				if err := o.Run(ctx, net, h, got); err != nil {
					t.Fatalf("%s: %v", o.Name, err)
				}
				d, at := golden.MaxAbsDiff(got, o.Want)
				t.Logf("%s: max abs error %.3g vs PyTorch over %d values (%s, dtype %s)", o.Name, d, len(o.Want), m.Config.Kind, m.DType)
				if d > GoldenTol {
					t.Errorf("%s: max abs error vs PyTorch %.3g > %g at index %d (got %v, PyTorch %v)", o.Name, d, GoldenTol, at, got[at], o.Want[at])
				}
				if refNet == nil {
					continue
				}
				want := make([]float32, len(o.Want))
				if err := o.Run(ctx, refNet, refH, want); err != nil {
					t.Fatalf("%s on %s: %v", o.Name, ref.Name(), err)
				}
				w64 := make([]float64, len(want))
				for i, v := range want {
					w64[i] = float64(v)
				}
				d, at = golden.MaxAbsDiff(got, w64)
				t.Logf("%s: max abs error %.3g vs %s", o.Name, d, ref.Name())
				if d > GoldenTol {
					t.Errorf("%s: max abs error vs %s %.3g > %g at index %d (got %v, %s %v)", o.Name, ref.Name(), d, GoldenTol, at, got[at], ref.Name(), want[at])
				}
			}
		})
	}
}

// checkFixture checks that a fixture holds the outputs its model has.
func checkFixture(t *testing.T, file string, g *golden.File, m *model.Model) {
	t.Helper()
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
	if len(g.Outputs()) == 0 {
		t.Errorf("%s: no outputs to compare", file)
	}
}
