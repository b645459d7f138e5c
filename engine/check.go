package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/checked"
)

// The argument checks of the Net contract, written once for every backend.
// Each message starts with "<backend>: <op>: " (backend is the package name,
// "cpu" or "gpu"), names the problem and says what to pass instead;
// internal/enginetest holds the table every backend's tests run against them.

// CheckTokens validates Encode's arguments for model m: B, T >= 1,
// T <= block_size, len(tokens) == B*T and every id in [0, vocab_size).
func CheckTokens(backend string, m *model.Model, tokens []int32, B, T int) error {
	cfg := &m.Config
	if B < 1 || T < 1 {
		return fmt.Errorf("%s: encode: batch %d x length %d; both must be at least 1", backend, B, T)
	}
	if T > cfg.BlockSize {
		return fmt.Errorf("%s: encode: sequence length %d exceeds block_size %d of model %s; use at most %d tokens per row", backend, T, cfg.BlockSize, m.Name(), cfg.BlockSize)
	}
	n, ok := checked.Mul(B, T)
	if !ok {
		return fmt.Errorf("%s: encode: batch %d x length %d overflows int; got %d token ids", backend, B, T, len(tokens))
	}
	if len(tokens) != n {
		return fmt.Errorf("%s: encode: got %d token ids for batch %d x length %d, want %d", backend, len(tokens), B, T, n)
	}
	for p, id := range tokens {
		if id < 0 || int(id) >= cfg.VocabSize {
			return fmt.Errorf("%s: encode: token id %d at row %d, column %d is outside the vocabulary [0, %d) of model %s", backend, id, p/T, p%T, cfg.VocabSize, m.Name())
		}
	}
	return nil
}

// Stamped is a backend's Hidden: Origin returns the Net whose Encode made
// it and that Net's Encode count at the time (nil, 0 for a nil pointer).
type Stamped interface {
	Hidden
	Origin() (net Net, gen uint64)
}

// CheckHidden returns h as the backend's hidden type H, or an error if h
// does not come from the latest Encode (generation gen) of net.
func CheckHidden[H Stamped](backend, op string, h Hidden, net Net, gen uint64) (H, error) {
	var zero H
	hh, ok := h.(H)
	if !ok {
		return zero, fmt.Errorf("%s: %s: hidden state %T does not come from the %s backend; pass the result of this Net's Encode", backend, op, h, strings.ToUpper(backend))
	}
	from, g := hh.Origin()
	switch {
	case from == nil:
		return zero, fmt.Errorf("%s: %s: hidden state %T is nil and does not come from the %s backend; pass the result of this Net's Encode", backend, op, h, strings.ToUpper(backend))
	case from != net:
		return zero, fmt.Errorf("%s: %s: hidden state comes from another Net (model %s); pass the result of this Net's Encode", backend, op, from.Model().Name())
	case g != gen:
		return zero, fmt.Errorf("%s: %s: hidden state is stale: Encode ran again after it was made (a Hidden is valid until the next Encode)", backend, op)
	}
	return hh, nil
}

// CheckDst checks that dst holds exactly want values laid out as shape
// (e.g. "(B, T) = (2, 4)").
func CheckDst(backend, op string, dst []float32, want int, shape string) error {
	if len(dst) != want {
		return fmt.Errorf("%s: %s: dst has %d values, want %d for %s", backend, op, len(dst), want, shape)
	}
	return nil
}

// CheckCtx returns ctx's error, if any, wrapped with the backend and op.
func CheckCtx(ctx context.Context, backend, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s: %w", backend, op, err)
	}
	return nil
}

// The heads a model kind may lack, for MissingHead.
const (
	HeadLogits  = "logits"  // per-position logits: not on a judge
	HeadCritic  = "critic"  // heads.critic of a language model
	HeadSampler = "sampler" // heads.sampler of a language model
	HeadJudge   = "judge"   // the sequence head of a judge
)

// MissingHead is the error of a head method called on a model without that
// head (one of the Head constants).
func MissingHead(backend, op string, m *model.Model, head string) error {
	kind := m.Config.Kind
	switch head {
	case HeadLogits:
		return fmt.Errorf("%s: %s: model %s is a %s (judge) and has no per-position logits; use JudgeEval", backend, op, m.Name(), kind)
	case HeadCritic, HeadSampler:
		return fmt.Errorf("%s: %s: model %s has no %s head (a %s; heads.%s is false)", backend, op, m.Name(), head, kind, head)
	case HeadJudge:
		return fmt.Errorf("%s: %s: model %s is a %s, not a %s: it has no sequence head", backend, op, m.Name(), kind, model.SequenceScorer)
	}
	return fmt.Errorf("%s: %s: model %s has no %s head", backend, op, m.Name(), head)
}

// CheckSamplerArgs validates SamplerLogits' arguments on a hidden state of
// B x T positions and a vocabulary of V: pos, left and right of one length
// n, dst of n*V values, every pos a flat index b*T+t < B*T and every
// neighbour a token id in [0, V) or -1.
func CheckSamplerArgs(backend, op string, B, T, V int, pos, left, right []int32, dst []float32) error {
	N := len(pos)
	if len(left) != N || len(right) != N {
		return fmt.Errorf("%s: %s: pos, left and right have %d, %d and %d entries; they must have one entry per position", backend, op, len(pos), len(left), len(right))
	}
	want, ok := checked.Mul(N, V)
	if !ok {
		want = -1
	}
	if err := CheckDst(backend, op, dst, want, fmt.Sprintf("(n, V) = (%d, %d)", N, V)); err != nil {
		return err
	}
	BT := B * T // Encode checked it: at most block_size per row and one id each
	for i := range pos {
		if p := pos[i]; p < 0 || int(p) >= BT {
			return fmt.Errorf("%s: %s: pos[%d] = %d is outside the hidden state's %d positions (flat b*T+t with B = %d, T = %d)", backend, op, i, p, BT, B, T)
		}
		for _, nb := range []struct {
			name string
			id   int32
		}{{"left", left[i]}, {"right", right[i]}} {
			if nb.id < -1 || int(nb.id) >= V {
				return fmt.Errorf("%s: %s: %s[%d] = %d is not a token id in [0, %d) or -1 (a zero vector)", backend, op, nb.name, i, nb.id, V)
			}
		}
	}
	return nil
}

// CheckLogitsDst checks Logits' dst: (B, T, V) for a language model,
// (B, T, K) for a token classifier.
func CheckLogitsDst(backend string, m *model.Model, B, T int, dst []float32) error {
	K, width := m.Config.OutputSize(), "V"
	if m.Config.Kind == model.TokenClassifier {
		width = "K"
	}
	want, ok := checked.MulAll(B, T, K)
	if !ok {
		want = -1
	}
	return CheckDst(backend, "logits", dst, want, fmt.Sprintf("(B, T, %s) = (%d, %d, %d)", width, B, T, K))
}
