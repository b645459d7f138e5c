package cpu

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/enginetest"
)

var _ engine.Backend = (*Backend)(nil)
var _ engine.Net = (*Net)(nil)

func intp(v int) *int { return &v }

// variants covers every model kind and trunk option of sampler-spec §1.9.
func variants() []struct {
	name string
	cfg  model.Config
} {
	var out []struct {
		name string
		cfg  model.Config
	}
	add := func(name string, edit func(c *model.Config)) {
		c := testConfig()
		edit(&c)
		out = append(out, struct {
			name string
			cfg  model.Config
		}{name, c})
	}
	add("lm_rope_bidir_bias_heads", func(c *model.Config) {
		c.Heads = &model.Heads{Critic: true, Sampler: true}
	})
	add("lm_abs_causal_nobias_critic", func(c *model.Config) {
		c.PositionEncoding, c.Attention, c.Bias = model.Absolute, model.Causal, false
		c.Heads = &model.Heads{Critic: true}
	})
	add("lm_nopos_bidir_cls", func(c *model.Config) {
		c.PositionEncoding, c.RopeBase = model.NoPos, 0
		c.CLSTokenID = intp(c.VocabSize - 1)
	})
	add("lm_rope_causal_1head_3layers", func(c *model.Config) {
		c.Attention, c.NHead, c.NLayer, c.NEmbd = model.Causal, 1, 3, 12
	})
	add("judge_rope_cls", func(c *model.Config) {
		c.Kind = model.SequenceScorer
		c.CLSTokenID = intp(c.VocabSize - 1)
	})
	add("classifier_rope_nobias", func(c *model.Config) {
		c.Kind, c.Bias, c.NumTokenClasses = model.TokenClassifier, false, 3
	})
	return out
}

// TestNetMatchesReference runs every variant through the backend and through
// the float64 reference of helpers_test.go (written from the spec, sharing no
// code with the backend) and compares every head.
func TestNetMatchesReference(t *testing.T) {
	const tol = 2e-4
	for vi, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			m := randomModel(t, v.cfg, uint64(100+vi))
			ref := refModel{m: m, cfg: &m.Config}
			for _, threads := range []int{1, 2} {
				net := mustLoad(t, m, threads)
				for _, shape := range []struct{ B, T int }{{1, 1}, {2, 7}, {3, v.cfg.BlockSize}} {
					B, T := shape.B, shape.T
					tokens := randomTokens(B, T, v.cfg.VocabSize, uint64(B*100+T))
					if cls := v.cfg.CLSTokenID; cls != nil {
						tokens[0] = int32(*cls) // CLS at the start of row 0 ...
						if len(tokens) > 3 {
							tokens[3] = int32(*cls) // ... and inside a row
						}
					}
					h, err := net.Encode(context.Background(), tokens, B, T)
					if err != nil {
						t.Fatal(err)
					}
					refH := ref.encode(tokens, B, T)
					check := func(what string, got []float32, want []float64) {
						t.Helper()
						if d, at := maxAbsDiff(got, want); d > tol {
							t.Errorf("threads=%d B=%d T=%d: %s: max abs error %.3g at %d (got %v, want %v)", threads, B, T, what, d, at, got[at], want[at])
						}
					}
					check("hidden", net.act.h[:B*T*v.cfg.NEmbd], flatten(refH))
					if K := v.cfg.OutputSize(); K > 0 {
						got := make([]float32, B*T*K)
						if err := net.Logits(context.Background(), h, got); err != nil {
							t.Fatal(err)
						}
						check("logits", got, ref.logits(refH))
					}
					if v.cfg.HasCritic() {
						got := make([]float32, B*T)
						if err := net.CriticLogits(context.Background(), h, got); err != nil {
							t.Fatal(err)
						}
						check("critic", got, ref.critic(refH))
					}
					if v.cfg.HasSampler() {
						var pos, left, right []int32
						for p := 0; p < B*T; p += 2 {
							pos = append(pos, int32(p))
							left = append(left, int32(p%v.cfg.VocabSize)-1) // -1 (zeros) and real ids
							right = append(right, tokens[(p+1)%len(tokens)])
						}
						got := make([]float32, len(pos)*v.cfg.VocabSize)
						if err := net.SamplerLogits(context.Background(), h, pos, left, right, got); err != nil {
							t.Fatal(err)
						}
						check("sampler", got, ref.sampler(refH, pos, left, right))
					}
					if v.cfg.Kind == model.SequenceScorer {
						got := make([]float32, B)
						if err := net.JudgeEval(context.Background(), h, got); err != nil {
							t.Fatal(err)
						}
						check("judge", got, ref.judge(refH, B, T))
					}
				}
			}
		})
	}
}

// TestAttentionDirection: with causal attention a later token cannot change
// an earlier position's hidden state; with bidirectional attention it does.
func TestAttentionDirection(t *testing.T) {
	for _, attn := range []string{model.Causal, model.Bidirectional} {
		t.Run(attn, func(t *testing.T) {
			cfg := testConfig()
			cfg.Attention = attn
			net := mustLoad(t, randomModel(t, cfg, 9), 2)
			const T, changed = 10, 6
			C := cfg.NEmbd
			tokens := randomTokens(1, T, cfg.VocabSize, 5)
			if _, err := net.Encode(context.Background(), tokens, 1, T); err != nil {
				t.Fatal(err)
			}
			before := append([]float32(nil), net.act.h[:T*C]...)
			tokens[changed] = (tokens[changed] + 1) % int32(cfg.VocabSize)
			if _, err := net.Encode(context.Background(), tokens, 1, T); err != nil {
				t.Fatal(err)
			}
			for p := 0; p < T; p++ {
				same := true
				for c := 0; c < C; c++ {
					if net.act.h[p*C+c] != before[p*C+c] {
						same = false
					}
				}
				switch {
				case p < changed && attn == model.Causal && !same:
					t.Errorf("causal: position %d changed when only token %d did", p, changed)
				case attn == model.Bidirectional && same:
					t.Errorf("bidirectional: position %d did not change when token %d did", p, changed)
				case p >= changed && same:
					t.Errorf("%s: position %d did not change when token %d did", attn, p, changed)
				}
			}
		})
	}
}

// TestEncodeReusesBuffers: results do not depend on earlier calls with other
// shapes (buffers are reused and regrown).
func TestEncodeReusesBuffers(t *testing.T) {
	cfg := testConfig()
	m := randomModel(t, cfg, 11)
	fresh := func(tokens []int32, B, T int) []float32 {
		n := mustLoad(t, m, 2)
		if _, err := n.Encode(context.Background(), tokens, B, T); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), n.act.h[:B*T*cfg.NEmbd]...)
	}
	net := mustLoad(t, m, 2)
	for i, s := range []struct{ B, T int }{{1, 3}, {2, 12}, {1, 5}, {3, 4}, {4, 12}} {
		tokens := randomTokens(s.B, s.T, cfg.VocabSize, uint64(i))
		if _, err := net.Encode(context.Background(), tokens, s.B, s.T); err != nil {
			t.Fatal(err)
		}
		want := fresh(tokens, s.B, s.T)
		for j, w := range want {
			if net.act.h[j] != w {
				t.Fatalf("shape %dx%d after other shapes: h[%d] = %v, fresh Net %v", s.B, s.T, j, net.act.h[j], w)
			}
		}
	}
}

// TestErrors: the contract's table of bad arguments (internal/enginetest),
// each an error naming the problem, never a panic.
func TestErrors(t *testing.T) { enginetest.Errors(t, New(2), "cpu") }

// TestEncodeStopsBetweenLayers: a context canceled during Encode stops it
// before the next layer, with the context's error.
func TestEncodeStopsBetweenLayers(t *testing.T) {
	cfg := testConfig()
	cfg.NLayer = 4
	net := mustLoad(t, randomModel(t, cfg, 1), 1)
	ctx := &enginetest.CancelAfter{Context: context.Background(), OK: 3}
	_, err := net.Encode(ctx, randomTokens(1, 4, cfg.VocabSize, 1), 1, 4)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before layer 2 of 4") {
		t.Fatalf("err = %v, want context.Canceled before layer 2 of 4", err)
	}
}

func TestNewThreads(t *testing.T) {
	for _, tc := range []struct{ in, min int }{{0, 1}, {-3, 1}, {3, 3}} {
		be := New(tc.in)
		if be.Threads() < tc.min || (tc.in > 0 && be.Threads() != tc.in) {
			t.Errorf("New(%d).Threads() = %d", tc.in, be.Threads())
		}
		if be.Name() != "cpu" {
			t.Errorf("Name() = %q", be.Name())
		}
	}
}
