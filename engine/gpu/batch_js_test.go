//go:build js

package gpu

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
)

// TestBatchedDispatches: the browser build records a pass's dispatches with
// one call into JavaScript (runPassSource) instead of three WebGPU calls
// each. Batched and unbatched must give the same bits: the logits of a
// forward, and the texts of generations whose sampler-head waves go through
// direct and indirect dispatches (the indirect arguments' buffer is looked
// up in the registry); and the batched path must have run.
func TestBatchedDispatches(t *testing.T) {
	testBackend(t)
	defer func() { batchDispatches = true }()
	ctx := context.Background()
	m, err := model.Load(filepath.Join(goldenDir, "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := model.Load(filepath.Join("..", "..", "models", "shakespeare-small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, wd := range []string{"direct", "indirect"} {
		be, err := New(ctx, Options{WaveDispatch: wd})
		if err != nil {
			t.Fatal(err)
		}
		if !be.d.p.runPass.Truthy() {
			t.Fatal("runPass was not created (new Function refused?): the batched recording cannot run here")
		}
		run := func(batch bool) ([]float32, string, int) {
			batchDispatches = batch
			before := be.d.p.passCalls
			n, err := be.Load(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			defer n.(*Net).Close()
			B, T := 2, 24
			tokens := make([]int32, B*T)
			for i := range tokens {
				tokens[i] = int32((7*i + 3) % m.Config.VocabSize)
			}
			h, err := n.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			logits := make([]float32, B*T*m.Config.VocabSize)
			if err := n.Logits(ctx, h, logits); err != nil {
				t.Fatal(err)
			}
			sn, err := be.Load(ctx, small)
			if err != nil {
				t.Fatal(err)
			}
			defer sn.(*Net).Close()
			o := sampler.Defaults()
			o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 1, 32, 3, 3
			res, err := sampler.Generate(ctx, sampler.Models{LM: sn}, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Loop != "device" {
				t.Fatalf("the generation ran the %q loop, want the device loop", res.Loop)
			}
			var s strings.Builder
			for _, x := range res.Samples {
				s.WriteString(x.Text)
			}
			return logits, s.String(), be.d.p.passCalls - before
		}
		la, ta, ca := run(true)
		lb, tb, cb := run(false)
		if ca == 0 || cb != 0 {
			t.Fatalf("%s: runPass calls batched %d, unbatched %d: want > 0 and 0", wd, ca, cb)
		}
		for i := range la {
			if math.Float32bits(la[i]) != math.Float32bits(lb[i]) {
				t.Fatalf("%s: logit %d batched %v, unbatched %v", wd, i, la[i], lb[i])
			}
		}
		if ta != tb {
			t.Fatalf("%s waves: text batched %q, unbatched %q", wd, ta, tb)
		}
		t.Logf("%s waves: %d runPass calls; logits and text (%q) equal batched and unbatched", wd, ca, ta)
		be.Close()
	}
}
