package gpu

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/shaders"

	"github.com/remask/remask/internal/checked"
)

// The output heads (sampler-spec §1.5, §1.9) on the hidden state of the
// latest Encode. Each records its kernels and one copy, submits once and
// reads back only its own output.

// Logits implements engine.Net: (B, T, V) = h · wteᵀ for a language model,
// (B, T, K) = h · lm_headᵀ for a token classifier.
func (n *Net) Logits(ctx context.Context, h engine.Hidden, dst []float32) error {
	const opName = "logits"
	hh, err := n.checkHidden(opName, h)
	if err != nil {
		return err
	}
	if n.head == nil {
		return fmt.Errorf("gpu: %s: model %s is a %s (judge) and has no per-position logits; use JudgeEval", opName, n.m.Name(), n.m.Config.Kind)
	}
	BT := hh.B * hh.T
	if err := checkDst(opName, dst, BT*n.headN, fmt.Sprintf("(B, T, %d) = (%d, %d, %d)", n.headN, hh.B, hh.T, n.headN)); err != nil {
		return err
	}
	if err := ctxErr(ctx, opName); err != nil {
		return err
	}
	o, err := n.d.matmul("lm_head", BT, n.headN, n.C, whole(n.act.h), *n.head, nil, whole(n.act.out), shaders.ActNone, false)
	if err != nil {
		return err
	}
	return n.runHead(ctx, opName, []op{o}, n.act.out, dst)
}

// CriticLogits implements engine.Net: (B, T) = h · critic_head.weightᵀ.
func (n *Net) CriticLogits(ctx context.Context, h engine.Hidden, dst []float32) error {
	const opName = "critic logits"
	hh, err := n.checkHidden(opName, h)
	if err != nil {
		return err
	}
	if n.critic == nil {
		return fmt.Errorf("gpu: %s: model %s has no critic head (a %s; heads.critic is false)", opName, n.m.Name(), n.m.Config.Kind)
	}
	BT := hh.B * hh.T
	if err := checkDst(opName, dst, BT, fmt.Sprintf("(B, T) = (%d, %d)", hh.B, hh.T)); err != nil {
		return err
	}
	if err := ctxErr(ctx, opName); err != nil {
		return err
	}
	o, err := n.d.rowDot("critic_head", BT, n.C, n.C, whole(n.act.h), n.critic, whole(n.act.out), false, 0, 0)
	if err != nil {
		return err
	}
	return n.runHead(ctx, opName, []op{o}, n.act.out, dst)
}

// JudgeEval implements engine.Net: sigmoid(A·(w·h[b,0]) + B) per row.
func (n *Net) JudgeEval(ctx context.Context, h engine.Hidden, dst []float32) error {
	const opName = "judge eval"
	hh, err := n.checkHidden(opName, h)
	if err != nil {
		return err
	}
	if n.judgeW == nil {
		return fmt.Errorf("gpu: %s: model %s is a %s, not a %s: it has no sequence head", opName, n.m.Name(), n.m.Config.Kind, model.SequenceScorer)
	}
	if err := checkDst(opName, dst, hh.B, fmt.Sprintf("(B) = (%d)", hh.B)); err != nil {
		return err
	}
	if err := ctxErr(ctx, opName); err != nil {
		return err
	}
	o, err := n.d.rowDot("sequence_head", hh.B, n.C, hh.T*n.C, whole(n.act.h), n.judgeW, whole(n.act.out), true, n.judgeA, n.judgeB)
	if err != nil {
		return err
	}
	return n.runHead(ctx, opName, []op{o}, n.act.out, dst)
}

// SamplerLogits implements engine.Net: the sampler head at len(pos)
// positions, output_head(LN(SiLU(mlp.3(LN(SiLU(mlp.0([left, h_p, right]))))))).
func (n *Net) SamplerLogits(ctx context.Context, h engine.Hidden, pos, left, right []int32, dst []float32) error {
	const opName = "sampler logits"
	hh, err := n.checkHidden(opName, h)
	if err != nil {
		return err
	}
	s := n.sampler
	if s == nil {
		return fmt.Errorf("gpu: %s: model %s has no sampler head (a %s; heads.sampler is false)", opName, n.m.Name(), n.m.Config.Kind)
	}
	N := len(pos)
	if len(left) != N || len(right) != N {
		return fmt.Errorf("gpu: %s: pos, left and right have %d, %d and %d entries; they must have one entry per position", opName, len(pos), len(left), len(right))
	}
	C, V, BT := n.C, n.V, hh.B*hh.T
	if err := checkDst(opName, dst, N*V, fmt.Sprintf("(n, V) = (%d, %d)", N, V)); err != nil {
		return err
	}
	for i := range pos {
		if p := pos[i]; p < 0 || int(p) >= BT {
			return fmt.Errorf("gpu: %s: pos[%d] = %d is outside the hidden state's %d positions (flat b*T+t with B = %d, T = %d)", opName, i, p, BT, hh.B, hh.T)
		}
		for _, nb := range []struct {
			name string
			id   int32
		}{{"left", left[i]}, {"right", right[i]}} {
			if nb.id < -1 || int(nb.id) >= V {
				return fmt.Errorf("gpu: %s: %s[%d] = %d is not a token id in [0, %d) or -1 (a zero vector)", opName, nb.name, i, nb.id, V)
			}
		}
	}
	if err := ctxErr(ctx, opName); err != nil {
		return err
	}
	if N == 0 {
		return nil
	}
	if err := n.ensureSampler(N); err != nil {
		return fmt.Errorf("gpu: %s: %w", opName, err)
	}
	a := &n.act
	idx := make([]byte, 4*3*N)
	for i := 0; i < N; i++ {
		binary.LittleEndian.PutUint32(idx[4*i:], uint32(pos[i]))
		binary.LittleEndian.PutUint32(idx[4*(N+i):], uint32(left[i]))
		binary.LittleEndian.PutUint32(idx[4*(2*N+i):], uint32(right[i]))
	}
	if err := n.d.p.write(a.sidx, 0, idx); err != nil {
		return err
	}
	var ops []op
	add := func(o op, e error) {
		if err == nil {
			err = e
			ops = append(ops, o)
		}
	}
	add(n.d.gather(N, C, whole(a.h), n.wte, whole(a.sidx), whole(a.sin)))
	add(n.d.matmul("sampler mlp.0", N, C, 3*C, whole(a.sin), s.w0, s.b0, whole(a.sza), shaders.ActSiLU, false))
	add(n.d.layerNorm("sampler mlp.2", N, C, whole(a.sza), s.ln1, s.lb1, whole(a.szb), n.eps))
	add(n.d.matmul("sampler mlp.3", N, C, C, whole(a.szb), s.w3, s.b3, whole(a.sza), shaders.ActSiLU, false))
	add(n.d.layerNorm("sampler mlp.5", N, C, whole(a.sza), s.ln2, s.lb2, whole(a.szb), n.eps))
	add(n.d.matmul("sampler output_head", N, V, C, whole(a.szb), s.out, nil, whole(a.sout), shaders.ActNone, false))
	if err != nil {
		return fmt.Errorf("gpu: %s: %w", opName, err)
	}
	return n.runHead(ctx, opName, ops, a.sout, dst)
}

// ensureSampler sizes the sampler head's buffers for N rows.
func (n *Net) ensureSampler(N int) error {
	a := &n.act
	if N <= a.capN {
		return nil
	}
	for _, b := range []*buffer{a.sidx, a.sin, a.sza, a.szb, a.sout} {
		b.destroy()
	}
	n.heads.reset()
	capN := max(N, 64)
	C := uint64(n.C)
	var err error
	mk := func(what string, floats uint64) *buffer {
		if err != nil {
			return nil
		}
		var b *buffer
		b, err = n.d.storage(what, 4*floats)
		return b
	}
	a.sidx = mk("sampler ids (3·n)", 3*uint64(capN))
	a.sin = mk("sampler input (n·3C floats)", uint64(capN)*3*C)
	a.sza = mk("sampler hidden (n·C floats)", uint64(capN)*C)
	a.szb = mk("sampler hidden (n·C floats)", uint64(capN)*C)
	a.sout = mk("sampler logits (n·V floats)", uint64(capN)*uint64(n.V))
	if err != nil {
		a.capN = 0
		return err
	}
	a.capN = capN
	return nil
}

// checkTokens validates Encode's arguments (the CPU backend's rules).
func (n *Net) checkTokens(tokens []int32, B, T int) error {
	cfg := &n.m.Config
	if B < 1 || T < 1 {
		return fmt.Errorf("gpu: encode: batch %d x length %d; both must be at least 1", B, T)
	}
	if T > cfg.BlockSize {
		return fmt.Errorf("gpu: encode: sequence length %d exceeds block_size %d of model %s; use at most %d tokens per row", T, cfg.BlockSize, n.m.Name(), cfg.BlockSize)
	}
	if n, ok := checked.Mul(B, T); !ok || len(tokens) != n { // B*T could wrap to len(tokens)
		return fmt.Errorf("gpu: encode: got %d token ids for batch %d x length %d, want %d", len(tokens), B, T, n)
	}
	for p, id := range tokens {
		if id < 0 || int(id) >= cfg.VocabSize {
			return fmt.Errorf("gpu: encode: token id %d at row %d, column %d is outside the vocabulary [0, %d) of model %s", id, p/T, p%T, cfg.VocabSize, n.m.Name())
		}
	}
	return nil
}

// checkHidden returns the GPU hidden state behind h, or an error if h does
// not come from the latest Encode of this Net.
func (n *Net) checkHidden(op string, h engine.Hidden) (*hidden, error) {
	hh, ok := h.(*hidden)
	if !ok || hh == nil {
		return nil, fmt.Errorf("gpu: %s: hidden state %T does not come from the GPU backend; pass the result of this Net's Encode", op, h)
	}
	if hh.net != n {
		return nil, fmt.Errorf("gpu: %s: hidden state comes from another Net (model %s); pass the result of this Net's Encode", op, hh.net.m.Name())
	}
	if hh.gen != n.gen {
		return nil, fmt.Errorf("gpu: %s: hidden state is stale: Encode ran again after it was made (a Hidden is valid until the next Encode)", op)
	}
	return hh, nil
}

func checkDst(op string, dst []float32, want int, shape string) error {
	if len(dst) != want {
		return fmt.Errorf("gpu: %s: dst has %d values, want %d for %s", op, len(dst), want, shape)
	}
	return nil
}

func ctxErr(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gpu: %s: %w", op, err)
	}
	return nil
}
