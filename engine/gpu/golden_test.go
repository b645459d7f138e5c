package gpu

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/golden"
)

// goldenDir holds the PyTorch fixtures (tools/train/make_fixtures.py).
const goldenDir = "../../testdata/golden"

// goldenTol is the bound on the GPU forward with f32 compute: max
// abs error against PyTorch (float64) and against engine/cpu. Observed
// errors are around 1e-6 (see the test log).
const goldenTol = 2e-3

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
			g, err := golden.Read(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.Load(filepath.Join(goldenDir, g.Model))
			if err != nil {
				t.Fatal(err)
			}
			gn, err := be.Load(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			defer gn.(*Net).Close()
			cn, err := cpu.New(1).Load(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			tokens, B, T := g.Batch()
			gh, err := gn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := cn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			outs := g.Outputs()
			if len(outs) == 0 {
				t.Errorf("%s: no outputs compared", file)
			}
			for _, o := range outs {
				n := len(o.Want)
				got := make([]float32, n)
				if err := o.Run(ctx, gn, gh, got); err != nil {
					t.Fatalf("%s: %v", o.Name, err)
				}
				ref := make([]float32, n)
				if err := o.Run(ctx, cn, ch, ref); err != nil {
					t.Fatalf("%s (cpu): %v", o.Name, err)
				}
				dp, at := golden.MaxAbsDiff(got, o.Want)
				dc, atc := golden.MaxAbsDiff(got, f64(ref))
				t.Logf("%s: max abs error %.3g vs PyTorch, %.3g vs CPU, over %d values (%s dtype %s)", o.Name, dp, dc, n, m.Config.Kind, m.DType)
				if dp > goldenTol {
					t.Errorf("%s: max abs error vs PyTorch %.3g > %g at %d (gpu %v, PyTorch %v)", o.Name, dp, goldenTol, at, got[at], o.Want[at])
				}
				if dc > goldenTol {
					t.Errorf("%s: max abs error vs CPU %.3g > %g at %d (gpu %v, cpu %v)", o.Name, dc, goldenTol, atc, got[atc], ref[atc])
				}
			}
		})
	}
}
