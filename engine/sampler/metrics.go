package sampler

import (
	"context"
	"math"
	"sort"

	"github.com/remask/remask/engine"
)

// metrics computes the quality metrics of the final tokens (sampler-spec
// 4.11): one LM trunk pass gives the self-confidence and, when the model has
// a critic, the critic statistics; the judge, when it is the metric, scores
// every row.
func (g *generation) metrics(ctx context.Context) error {
	if g.metric == MetricNone {
		return nil
	}
	h, err := g.lm.Encode(ctx, g.tokens, g.B, g.T)
	if err != nil {
		return err
	}
	if err := g.lm.Logits(ctx, h, g.logits); err != nil {
		return err
	}
	for b := 0; b < g.B; b++ {
		if c, ok := g.selfConfidence(b); ok {
			g.res.Samples[b].SelfConfidence = &c
		}
	}
	if g.cfg.HasCritic() {
		if err := g.lm.CriticLogits(ctx, h, g.critic); err != nil {
			return err
		}
		for b := 0; b < g.B; b++ {
			g.res.Samples[b].Critic = g.criticStats(b)
		}
	}
	if g.metric == MetricJudge {
		return g.judgeScores(ctx)
	}
	return nil
}

// selfConfidence is the mean of ln(q[token] + 1e-10) over the row's
// positions that do not hold the mask id, q = softmax(logits) of the final
// tokens (no temperature, full vocabulary). ok is false when every position
// is masked (the reference's -inf).
func (g *generation) selfConfidence(b int) (float64, bool) {
	V := g.V
	var sum float64
	n := 0
	for t := 0; t < g.T; t++ {
		p := b*g.T + t
		tok := g.tokens[p]
		if tok == g.mask {
			continue
		}
		row := g.logits[p*V : (p+1)*V]
		maxL := math.Inf(-1)
		for _, l := range row {
			maxL = math.Max(maxL, float64(l))
		}
		var z float64
		for _, l := range row {
			z += math.Exp(float64(l) - maxL)
		}
		sum += math.Log(math.Exp(float64(row[tok])-maxL)/z + 1e-10)
		n++
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// criticStats are the mean and the 10/50/90th percentiles (linear
// interpolation, as torch.quantile) of sigmoid(critic) over the row's
// positions that hold neither the mask nor the pad id; nil when there are none.
func (g *generation) criticStats(b int) *CriticStats {
	var probs []float64
	for t := 0; t < g.T; t++ {
		p := b*g.T + t
		tok := int(g.tokens[p])
		if tok == int(g.mask) || (g.vocab.PadTokenID != nil && tok == *g.vocab.PadTokenID) {
			continue
		}
		probs = append(probs, sigmoid(float64(g.critic[p])))
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Float64s(probs)
	var sum float64
	for _, x := range probs {
		sum += x
	}
	return &CriticStats{Mean: sum / float64(len(probs)), P10: quantile(probs, 0.1), P50: quantile(probs, 0.5), P90: quantile(probs, 0.9)}
}

// quantile of sorted xs with linear interpolation between closest ranks.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	return xs[lo] + (pos-float64(lo))*(xs[hi]-xs[lo])
}

// judgeInput builds the judge's rows: [CLS] + tokens when the judge has a
// CLS id. When that is longer than the judge's block_size, remask keeps CLS
// and the first block_size-1 tokens; the judge-keep-last compat switch keeps
// the last block_size columns instead, which drops CLS (Q12).
func (g *generation) judgeInput() (rows []int32, L int) {
	jc := &g.judgeModel.Config
	jb := jc.BlockSize
	var full []int32
	for b := 0; b < g.B; b++ {
		var r []int32
		if jc.CLSTokenID != nil {
			r = append(r, int32(*jc.CLSTokenID))
		}
		r = append(r, g.row(g.tokens, b)...)
		if len(r) > jb {
			if g.o.Compat.JudgeKeepLast {
				r = r[len(r)-jb:]
			} else {
				r = r[:jb]
			}
		}
		full = append(full, r...)
		L = len(r)
	}
	return full, L
}

// judgeScores sets judge_score = 1 - clamp(evaluation, 0, 1) per sample.
func (g *generation) judgeScores(ctx context.Context) error {
	rows, L := g.judgeInput()
	var h engine.Hidden
	h, err := g.judge.Encode(ctx, rows, g.B, L)
	if err != nil {
		return err
	}
	ev := make([]float32, g.B)
	if err := g.judge.JudgeEval(ctx, h, ev); err != nil {
		return err
	}
	for b, e := range ev {
		s := 1 - math.Min(math.Max(float64(e), 0), 1)
		g.res.Samples[b].JudgeScore = &s
	}
	return nil
}
