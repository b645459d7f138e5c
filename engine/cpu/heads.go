package cpu

import (
	"context"
	"fmt"

	"github.com/remask/remask/engine"
)

// The output heads of sampler-spec.md §1.5 / §1.9, on the hidden state of
// the latest Encode.

// Logits implements engine.Net: the lm_head output for every position,
// (B, T, V) = h · wteᵀ for a language model (tied head) or
// (B, T, K) = h · lm_headᵀ for a token classifier.
func (n *Net) Logits(ctx context.Context, h engine.Hidden, dst []float32) error {
	const op = "logits"
	hh, err := n.checkHidden(op, h)
	if err != nil {
		return err
	}
	if n.head == nil {
		return engine.MissingHead("cpu", op, n.m, engine.HeadLogits)
	}
	BT := hh.B * hh.T
	if err := engine.CheckLogitsDst("cpu", n.m, hh.B, hh.T, dst); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "cpu", op); err != nil {
		return err
	}
	linear(dst, n.act.h[:BT*n.C], n.head, nil, BT, n.headN, n.C).run(n.workers())
	return nil
}

// CriticLogits implements engine.Net: the critic head's logit per
// position, (B, T) = h · critic_head.weightᵀ.
func (n *Net) CriticLogits(ctx context.Context, h engine.Hidden, dst []float32) error {
	const op = "critic logits"
	hh, err := n.checkHidden(op, h)
	if err != nil {
		return err
	}
	if n.critic == nil {
		return engine.MissingHead("cpu", op, n.m, engine.HeadCritic)
	}
	BT := hh.B * hh.T
	if err := engine.CheckDst("cpu", op, dst, BT, fmt.Sprintf("(B, T) = (%d, %d)", hh.B, hh.T)); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "cpu", op); err != nil {
		return err
	}
	linear(dst, n.act.h[:BT*n.C], n.critic, nil, BT, 1, n.C).run(n.workers())
	return nil
}

// SamplerLogits implements engine.Net: the sampler head at n positions,
// output_head(LN(SiLU(mlp.3(LN(SiLU(mlp.0([left, h_p, right]))))))),
// where left/right are the wte rows of the neighbour ids, or zeros for -1.
func (n *Net) SamplerLogits(ctx context.Context, h engine.Hidden, pos, left, right []int32, dst []float32) error {
	const op = "sampler logits"
	hh, err := n.checkHidden(op, h)
	if err != nil {
		return err
	}
	s := n.sampler
	if s == nil {
		return engine.MissingHead("cpu", op, n.m, engine.HeadSampler)
	}
	if err := engine.CheckSamplerArgs("cpu", op, hh.B, hh.T, n.V, pos, left, right, dst); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "cpu", op); err != nil {
		return err
	}
	N, C, V := len(pos), n.C, n.V
	if N == 0 {
		return nil
	}

	if need := N * 5 * C; len(n.samplerBuf) < need {
		n.samplerBuf = make([]float32, need)
	}
	in := n.samplerBuf[:N*3*C]        // (n, 3C) = [left, h_p, right]
	z0 := n.samplerBuf[N*3*C : N*4*C] // (n, C)
	z1 := n.samplerBuf[N*4*C : N*5*C] // (n, C)
	samplerInput(in, n.act.h, n.wte, pos, left, right, C)
	workers := n.workers()
	linear(z0, in, s.w0, s.b0, N, C, 3*C).run(workers) // mlp.0
	silu(z0)                                           // mlp.1
	layerNorm(z0, z0, s.ln1, s.lb1, N, C, n.eps)       // mlp.2
	linear(z1, z0, s.w3, s.b3, N, C, C).run(workers)   // mlp.3
	silu(z1)                                           // mlp.4
	layerNorm(z1, z1, s.ln2, s.lb2, N, C, n.eps)       // mlp.5
	linear(dst, z1, s.out, nil, N, V, C).run(workers)  // output_head
	return nil
}

// samplerInput gathers the sampler head's input rows [left, h_p, right].
func samplerInput(in, h, wte []float32, pos, left, right []int32, C int) {
	// in (n, 3C); h (B·T, C); wte (V, C)
	for i, p := range pos {
		row := in[i*3*C : (i+1)*3*C]
		neighbour(row[:C], wte, left[i], C)
		copy(row[C:2*C], h[int(p)*C:(int(p)+1)*C])
		neighbour(row[2*C:], wte, right[i], C)
	}
}

// neighbour writes wte[id], or zeros for id -1.
func neighbour(dst, wte []float32, id int32, C int) {
	if id < 0 {
		clear(dst)
		return
	}
	copy(dst, wte[int(id)*C:(int(id)+1)*C])
}

// JudgeEval implements engine.Net: the judge's evaluation per batch row,
// sigmoid(A·(w·h[b,0]) + B), read from position 0 only.
func (n *Net) JudgeEval(ctx context.Context, h engine.Hidden, dst []float32) error {
	const op = "judge eval"
	hh, err := n.checkHidden(op, h)
	if err != nil {
		return err
	}
	if n.judge == nil {
		return engine.MissingHead("cpu", op, n.m, engine.HeadJudge)
	}
	if err := engine.CheckDst("cpu", op, dst, hh.B, fmt.Sprintf("(B) = (%d)", hh.B)); err != nil {
		return err
	}
	if err := engine.CheckCtx(ctx, "cpu", op); err != nil {
		return err
	}
	C := n.C
	for b := range dst {
		h0 := n.act.h[b*hh.T*C : b*hh.T*C+C] // h[b, 0]
		dst[b] = float32(sigmoid(n.judge.A*float64(dot(h0, n.judge.w)) + n.judge.B))
	}
	return nil
}
