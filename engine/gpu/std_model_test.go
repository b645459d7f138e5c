package gpu

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
)

// standardTestModel is the shipped models' shape (6 layers, 6 heads, 384
// wide, vocabulary 67, rotary, bidirectional, critic and sampler heads) with
// biases switched on and seeded random weights, so every term of every
// kernel matters.
func standardTestModel(seed uint64) (*model.Model, error) {
	cfg := model.Standard()
	cfg.Bias = true
	cfg.Sampler.MinNeighborsRatio = 0.1
	return model.Random(cfg, seed, 0.02)
}

// stdTol bounds the GPU-vs-CPU difference on the standard model (C = 384,
// K up to 1536): both sum in float32, in different orders, over products
// 12 times longer than the golden fixtures' (enginetest.GoldenTol); the
// test log has the differences seen.
const stdTol = 2e-3

// TestStandardModel2x128 is the regression test of the lavapipe segfault:
// the whole standard model at 2 x 128 tokens, every head, against engine/cpu.
//
// The crash: wgpu-native's blocking Device.Poll(true) gives up after 5 s and
// then treats the work as done, freeing what the GPU is still using
// (platform_native.go, pollUntil). One forward at 2 x 128 takes 1.5 to 5 s
// on lavapipe with two shared cores, so the crash came and went with the
// machine's load. Here one submission holds three forwards and the test waits
// for it (Sync, as bench does), well over 5 s on lavapipe (the log says how
// long): the old wait crashed every time; the outputs must match the CPU backend's within
// stdTol.
func TestStandardModel2x128(t *testing.T) {
	be := testBackend(t)
	if testing.Short() {
		t.Skip("-short: the whole standard model on lavapipe takes about 15 s")
	}
	ctx := context.Background()
	m, err := standardTestModel(7)
	if err != nil {
		t.Fatal(err)
	}
	gn, err := be.Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer gn.(*Net).Close()
	cn, err := cpu.New(0).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	const B, T = 2, 128
	rng := rand.New(rand.NewPCG(8, 9))
	tokens := make([]int32, B*T)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(m.Config.VocabSize))
	}
	gh, err := gn.Encode(ctx, tokens, B, T)
	if err != nil {
		t.Fatal(err)
	}
	// One more submission holding the trunk three times over (each pass
	// starts again from the embeddings, so h is unchanged): on lavapipe it
	// runs well over 5 s, and Logits' read waits for it.
	n := gn.(*Net)
	ops, err := n.trunkOps(B, T)
	if err != nil {
		t.Fatal(err)
	}
	var all []op
	for i := 0; i < 3; i++ {
		all = append(all, ops...)
	}
	rec, err := n.d.p.newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.trunk.record(rec, all); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rec.submit(); err != nil {
		t.Fatal(err)
	}
	if err := n.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("one submission of 3 forwards at %d x %d: waited %.1f s for it (a wait over 5 s is what crashed)", B, T, time.Since(start).Seconds())
	got := make([]float32, B*T*m.Config.VocabSize)
	if err := gn.Logits(ctx, gh, got); err != nil {
		t.Fatal(err)
	}
	ch, err := cn.Encode(ctx, tokens, B, T)
	if err != nil {
		t.Fatal(err)
	}
	compare := func(what string, got []float32, run func(engine.Net, engine.Hidden, []float32) error) {
		t.Helper()
		ref := make([]float32, len(got))
		if err := run(cn, ch, ref); err != nil {
			t.Fatalf("%s (cpu): %v", what, err)
		}
		d, at := maxAbsDiff(got, f64(ref))
		t.Logf("%s: max abs difference to the CPU backend %.3g over %d values", what, d, len(got))
		if d > stdTol {
			t.Errorf("%s: max abs difference to the CPU backend %.3g > %g at %d (gpu %v, cpu %v)", what, d, stdTol, at, got[at], ref[at])
		}
	}
	compare("logits", got, func(n engine.Net, h engine.Hidden, d []float32) error { return n.Logits(ctx, h, d) })
	critic := make([]float32, B*T)
	if err := gn.CriticLogits(ctx, gh, critic); err != nil {
		t.Fatal(err)
	}
	compare("critic logits", critic, func(n engine.Net, h engine.Hidden, d []float32) error { return n.CriticLogits(ctx, h, d) })
	var pos, left, right []int32
	for i := 0; i < 40; i++ {
		pos = append(pos, int32(rng.IntN(B*T)))
		left = append(left, int32(rng.IntN(m.Config.VocabSize+1))-1) // -1: no neighbour
		right = append(right, int32(rng.IntN(m.Config.VocabSize+1))-1)
	}
	sampler := make([]float32, len(pos)*m.Config.VocabSize)
	if err := gn.SamplerLogits(ctx, gh, pos, left, right, sampler); err != nil {
		t.Fatal(err)
	}
	compare("sampler logits", sampler, func(n engine.Net, h engine.Hidden, d []float32) error {
		return n.SamplerLogits(ctx, h, pos, left, right, d)
	})
}

// TestStandardModelVariants runs the standard model's forward at 1 x 16
// (the shape where the split kernels apply: small grids, deep K, short
// sequences) with each kernel variant of Options against engine/cpu, and
// counts its dispatches. Without the splits (Split "none"): 49, the
// embedding fused with h.0.ln_1 (embednorm.wgsl), then 8 a layer (c_attn,
// rope, attention, c_proj, ln_2, c_fc, c_proj, the next ln_1 or ln_f).
// With them (the default): 61, each of the 4 split matmuls of a layer
// adds its partials dispatch, and the two c_proj reduces run fused with
// the LayerNorm after them (addnorm.wgsl); the attention split does not
// apply at T = 16 with 6 heads (TestAttnSplits). At 1 x 256 the attention
// split adds a combine a layer and takes in the rope (49 with the matmul
// split or without).
func TestStandardModelVariants(t *testing.T) {
	testBackend(t) // skips without an adapter (outside CI)
	if testing.Short() {
		t.Skip("-short: the standard model on lavapipe, four times")
	}
	ctx := context.Background()
	m, err := standardTestModel(11)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := cpu.New(0).Load(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12, 13))
	for _, c := range []struct {
		name       string
		o          Options
		T          int
		dispatches int
	}{
		{"default (split)", Options{}, 16, 61},
		{"no split", Options{Split: []string{"none"}}, 16, 49},
		{"split", Options{Split: []string{"attn", "mm"}}, 16, 61},
		{"double-buffered", Options{MatmulDoubleBuffer: true, Split: []string{"none"}}, 16, 49},
		{"split+db+tiled", Options{Split: []string{"mm", "attn"}, MatmulDoubleBuffer: true, Attention: "tiled"}, 16, 61},
		{"tiled", Options{Attention: "tiled", Split: []string{"none"}}, 16, 49},
		{"tile 64x64x16x4x4db", Options{MatmulTile: "64x64x16x4x4db", Split: []string{"none"}}, 16, 49},
		{"tile 128x128x8x8x8nw8c2", Options{MatmulTile: "128x128x8x8x8nw8c2", Split: []string{"none"}}, 16, 49},
		{"tile 32x32x16x4x4dbnw4, split", Options{MatmulTile: "32x32x16x4x4dbnw4"}, 16, 61},
		{"tile 32x32x16x4x4k4 (sliced K), split", Options{MatmulTile: "32x32x16x4x4k4"}, 16, 61},
		{"tile 32x32x16x4x4nw4c2k4 (sliced K) at 1x256, attention split", Options{MatmulTile: "32x32x16x4x4nw4c2k4", Split: []string{"attn"}}, 256, 49},
		{"attention split at 1x256", Options{Split: []string{"attn"}}, 256, 49},
		{"rows", Options{Attention: "rows", Split: []string{"none"}}, 16, 49},
		{"rows 2x32x16x8 at 1x256", Options{Attention: "rows", AttentionTile: "2x32x16x8", Split: []string{"none"}}, 256, 49},
		{"rows 1x64x32x4pf at 1x256", Options{Attention: "rows", AttentionTile: "1x64x32x4pf", Split: []string{"none"}}, 256, 49},
		{"rows, default limits", Options{Attention: "rows", Limits: "default", Split: []string{"none"}}, 16, 49},
		{"rows with the split (split at 1x256)", Options{Attention: "rows"}, 256, 49},
		{"default limits", Options{Limits: "default"}, 16, 61},
	} {
		t.Run(c.name, func(t *testing.T) {
			B, T := 1, c.T
			tokens := make([]int32, B*T)
			for i := range tokens {
				tokens[i] = int32(rng.IntN(m.Config.VocabSize))
			}
			ch, err := cn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			ref := make([]float32, B*T*m.Config.VocabSize)
			if err := cn.Logits(ctx, ch, ref); err != nil {
				t.Fatal(err)
			}
			be, err := New(ctx, c.o)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			gn, err := be.Load(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			defer gn.(*Net).Close()
			gh, err := gn.Encode(ctx, tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			if d := gn.(*Net).Dispatches(); d != c.dispatches {
				t.Errorf("%d dispatches per forward, want %d", d, c.dispatches)
			}
			got := make([]float32, len(ref))
			if err := gn.Logits(ctx, gh, got); err != nil {
				t.Fatal(err)
			}
			d, at := maxAbsDiff(got, f64(ref))
			t.Logf("logits: max abs difference to the CPU backend %.3g", d)
			if d > stdTol {
				t.Errorf("logits: max abs difference to the CPU backend %.3g > %g at %d", d, stdTol, at)
			}
		})
	}
}

// TestTiledAttentionHeadSize: Options.Attention "tiled" on a model whose
// head size is not 64 is refused at Load, naming the option.
func TestTiledAttentionHeadSize(t *testing.T) {
	testBackend(t)
	cfg := model.Standard()
	cfg.NHead = 12 // head size 32
	m, err := model.Random(cfg, 1, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	be, err := New(context.Background(), Options{Attention: "tiled"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, err := be.Load(context.Background(), m); err == nil || !strings.Contains(err.Error(), `attention "tiled" (Options.Attention) needs head size 64, the model's is 32`) {
		t.Errorf("Load: err = %v", err)
	}
}
