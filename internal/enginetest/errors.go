package enginetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// Errors runs the contract's table of bad arguments on be: each call must
// return an error (never panic) that starts with "<prefix>: " (the
// backend's package name, "cpu" or "gpu") and contains the table's
// substrings, which name the problem; a canceled context gives an error
// wrapping context.Canceled.
func Errors(t *testing.T, be engine.Backend, prefix string) {
	ctx := context.Background()
	lm := Config() // no critic, no sampler
	lmNet := Load(t, be, RandomModel(t, lm, 1))
	judgeCfg := Config()
	judgeCfg.Kind = model.SequenceScorer
	judgeNet := Load(t, be, RandomModel(t, judgeCfg, 2))
	samplerCfg := Config()
	samplerCfg.Heads = &model.Heads{Sampler: true}
	samplerNet := Load(t, be, RandomModel(t, samplerCfg, 3))
	classCfg := Config()
	classCfg.Kind, classCfg.NumTokenClasses = model.TokenClassifier, 3
	classNet := Load(t, be, RandomModel(t, classCfg, 5))

	V, BS := lm.VocabSize, lm.BlockSize
	good := RandomTokens(2, 4, V, 1)
	encode := func(n engine.Net) engine.Hidden {
		h, err := n.Encode(ctx, good, 2, 4)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	load := func(ctx context.Context, m *model.Model) error {
		n, err := be.Load(ctx, m)
		if err == nil {
			release(t, n)
		}
		return err
	}

	tests := []struct {
		name string
		run  func() error
		want []string // substrings of the message
	}{
		{"id too large", func() error {
			_, err := lmNet.Encode(ctx, []int32{1, 2, int32(V), 3}, 2, 2)
			return err
		}, []string{"encode: ", "token id 11", "row 1, column 0", "[0, 11)"}},
		{"negative id", func() error {
			_, err := lmNet.Encode(ctx, []int32{1, -4}, 1, 2)
			return err
		}, []string{"token id -4", "row 0, column 1"}},
		{"T over block_size", func() error {
			_, err := lmNet.Encode(ctx, make([]int32, BS+1), 1, BS+1)
			return err
		}, []string{"exceeds block_size 12", "use at most 12 tokens per row"}},
		{"token count", func() error {
			_, err := lmNet.Encode(ctx, make([]int32, 5), 2, 3)
			return err
		}, []string{"got 5 token ids", "want 6"}},
		{"B*T overflows", func() error {
			_, err := lmNet.Encode(ctx, make([]int32, 4), 1<<62, 8)
			return err
		}, []string{"batch 4611686018427387904 x length 8 overflows int"}},
		{"zero batch", func() error {
			_, err := lmNet.Encode(ctx, nil, 0, 3)
			return err
		}, []string{"at least 1"}},
		{"canceled encode", func() error {
			_, err := lmNet.Encode(canceled, good, 2, 4)
			return err
		}, []string{"encode: context canceled"}},
		{"logits dst length", func() error {
			return lmNet.Logits(ctx, encode(lmNet), make([]float32, 2*4*V-1))
		}, []string{"logits: dst has 87 values, want 88", "(B, T, V) = (2, 4, 11)"}},
		{"classifier logits dst length", func() error {
			return classNet.Logits(ctx, encode(classNet), make([]float32, 2*4*V))
		}, []string{"dst has 88 values, want 24", "(B, T, K) = (2, 4, 3)"}},
		{"critic missing", func() error {
			return lmNet.CriticLogits(ctx, encode(lmNet), make([]float32, 8))
		}, []string{"has no critic head", "heads.critic is false"}},
		{"critic dst length", func() error {
			cfg := Config()
			cfg.Heads = &model.Heads{Critic: true}
			n := Load(t, be, RandomModel(t, cfg, 6))
			return n.CriticLogits(ctx, encode(n), make([]float32, 9))
		}, []string{"critic logits: dst has 9 values, want 8", "(B, T) = (2, 4)"}},
		{"sampler missing", func() error {
			return lmNet.SamplerLogits(ctx, encode(lmNet), []int32{0}, []int32{-1}, []int32{-1}, make([]float32, V))
		}, []string{"has no sampler head", "heads.sampler is false"}},
		{"judge missing", func() error {
			return lmNet.JudgeEval(ctx, encode(lmNet), make([]float32, 2))
		}, []string{"has no sequence head"}},
		{"judge has no logits", func() error {
			return judgeNet.Logits(ctx, encode(judgeNet), make([]float32, 8*V))
		}, []string{"no per-position logits", "JudgeEval"}},
		{"judge dst length", func() error {
			return judgeNet.JudgeEval(ctx, encode(judgeNet), make([]float32, 3))
		}, []string{"dst has 3 values, want 2", "(B) = (2)"}},
		{"sampler pos out of range", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{0, 8}, []int32{-1, -1}, []int32{-1, -1}, make([]float32, 2*V))
		}, []string{"pos[1] = 8", "8 positions"}},
		{"sampler negative pos", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{-1}, []int32{-1}, []int32{-1}, make([]float32, V))
		}, []string{"pos[0] = -1"}},
		{"sampler neighbour id", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{0}, []int32{-2}, []int32{-1}, make([]float32, V))
		}, []string{"left[0] = -2"}},
		{"sampler neighbour id too large", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{0}, []int32{-1}, []int32{int32(V)}, make([]float32, V))
		}, []string{"right[0] = 11", "[0, 11) or -1"}},
		{"sampler lengths", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{0, 1}, []int32{-1}, []int32{-1, 1}, make([]float32, 2*V))
		}, []string{"have 2, 1 and 2 entries"}},
		{"sampler dst", func() error {
			return samplerNet.SamplerLogits(ctx, encode(samplerNet), []int32{0}, []int32{-1}, []int32{int32(V - 1)}, make([]float32, 2*V))
		}, []string{"dst has 22 values, want 11", "(n, V) = (1, 11)"}},
		{"canceled sampler", func() error {
			return samplerNet.SamplerLogits(canceled, encode(samplerNet), []int32{0}, []int32{-1}, []int32{-1}, make([]float32, V))
		}, []string{"sampler logits: context canceled"}},
		{"stale hidden", func() error {
			h := encode(lmNet)
			encode(lmNet)
			return lmNet.Logits(ctx, h, make([]float32, 8*V))
		}, []string{"stale"}},
		{"hidden of another net", func() error {
			return lmNet.Logits(ctx, encode(samplerNet), make([]float32, 8*V))
		}, []string{"another Net"}},
		{"nil hidden", func() error {
			return lmNet.Logits(ctx, nil, make([]float32, 8*V))
		}, []string{"does not come from the " + strings.ToUpper(prefix) + " backend"}},
		{"foreign hidden", func() error {
			return lmNet.CriticLogits(ctx, foreignHidden{}, make([]float32, 8))
		}, []string{"enginetest.foreignHidden does not come from the " + strings.ToUpper(prefix) + " backend"}},
		{"canceled head", func() error {
			return lmNet.Logits(canceled, encode(lmNet), make([]float32, 8*V))
		}, []string{"logits: context canceled"}},
		{"invalid model", func() error {
			m := RandomModel(t, lm, 4)
			delete(m.Tensors, "transformer.h.1.mlp.c_fc.weight")
			return load(ctx, m)
		}, []string{"missing tensor transformer.h.1.mlp.c_fc.weight"}},
		{"bad config", func() error {
			m := RandomModel(t, lm, 4)
			m.Config.NHead = 3
			return load(ctx, m)
		}, []string{"not a multiple of model.n_head 3"}},
		{"nil model", func() error {
			return load(ctx, nil)
		}, []string{"model is nil"}},
		{"canceled load", func() error {
			return load(canceled, RandomModel(t, lm, 4))
		}, []string{"load", "context canceled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				err = tc.run()
			}()
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), prefix+": ") {
				t.Errorf("error %q does not start with %q", err, prefix+": ")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(tc.name, "canceled") && !errors.Is(err, context.Canceled) {
				t.Errorf("error %q does not wrap context.Canceled", err)
			}
		})
	}
}

// foreignHidden is a Hidden of no backend.
type foreignHidden struct{}

func (foreignHidden) Dims() (B, T int) { return 2, 4 }
