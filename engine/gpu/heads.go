package gpu

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/shaders"
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
		return engine.MissingHead("gpu", opName, n.m, engine.HeadLogits)
	}
	BT := hh.B * hh.T
	if err := engine.CheckLogitsDst("gpu", n.m, hh.B, hh.T, dst); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "gpu", opName); err != nil {
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
		return engine.MissingHead("gpu", opName, n.m, engine.HeadCritic)
	}
	BT := hh.B * hh.T
	if err := engine.CheckDst("gpu", opName, dst, BT, fmt.Sprintf("(B, T) = (%d, %d)", hh.B, hh.T)); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "gpu", opName); err != nil {
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
		return engine.MissingHead("gpu", opName, n.m, engine.HeadJudge)
	}
	if err := engine.CheckDst("gpu", opName, dst, hh.B, fmt.Sprintf("(B) = (%d)", hh.B)); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "gpu", opName); err != nil {
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
		return engine.MissingHead("gpu", opName, n.m, engine.HeadSampler)
	}
	if err := engine.CheckSamplerArgs("gpu", opName, hh.B, hh.T, n.V, pos, left, right, dst); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "gpu", opName); err != nil {
		return err
	}
	N, C, V := len(pos), n.C, n.V
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
	var o ops
	add := o.add
	add(n.d.gather(N, C, whole(a.h), n.wte, whole(a.sidx), whole(a.sin)))
	add(n.d.matmul("sampler mlp.0", N, C, 3*C, whole(a.sin), s.w0, s.b0, whole(a.sza), shaders.ActSiLU, false))
	add(n.d.layerNorm("sampler mlp.2", N, C, whole(a.sza), s.ln1, s.lb1, whole(a.szb), n.eps))
	add(n.d.matmul("sampler mlp.3", N, C, C, whole(a.szb), s.w3, s.b3, whole(a.sza), shaders.ActSiLU, false))
	add(n.d.layerNorm("sampler mlp.5", N, C, whole(a.sza), s.ln2, s.lb2, whole(a.szb), n.eps))
	add(n.d.matmul("sampler output_head", N, V, C, whole(a.szb), s.out, nil, whole(a.sout), shaders.ActNone, false))
	if o.err != nil {
		return fmt.Errorf("gpu: %s: %w", opName, o.err)
	}
	return n.runHead(ctx, opName, o.list, a.sout, dst)
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
	al := allocator{d: n.d}
	mk := al.words
	a.sidx = mk("sampler ids (3·n)", 3*uint64(capN))
	a.sin = mk("sampler input (n·3C floats)", uint64(capN)*3*C)
	a.sza = mk("sampler hidden (n·C floats)", uint64(capN)*C)
	a.szb = mk("sampler hidden (n·C floats)", uint64(capN)*C)
	a.sout = mk("sampler logits (n·V floats)", uint64(capN)*uint64(n.V))
	if al.err != nil {
		for _, b := range al.made {
			b.destroy()
		}
		a.sidx, a.sin, a.sza, a.szb, a.sout = nil, nil, nil, nil, nil
		a.capN = 0
		return al.err
	}
	a.capN = capN
	return nil
}

// checkHidden returns the GPU hidden state behind h, or an error if h does
// not come from the latest Encode of this Net.
func (n *Net) checkHidden(op string, h engine.Hidden) (*hidden, error) {
	return engine.CheckHidden[*hidden]("gpu", op, h, n, n.gen)
}
