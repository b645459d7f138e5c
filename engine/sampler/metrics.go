package sampler

import (
	"context"
	"math"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/internal/step"
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

// selfConfidence is step.SelfConfidence of row b of the final tokens.
func (g *generation) selfConfidence(b int) (float64, bool) {
	return step.SelfConfidence(g.row(g.tokens, b), g.logits[b*g.T*g.V:(b+1)*g.T*g.V], g.V, g.mask)
}

// criticStats is step.CriticRow of row b of the final tokens (the mask and
// pad ids excluded); nil when no position counts.
func (g *generation) criticStats(b int) *CriticStats {
	pad := -1
	if g.vocab.PadTokenID != nil {
		pad = *g.vocab.PadTokenID
	}
	s, ok := step.CriticRow(g.row(g.tokens, b), g.critic[b*g.T:(b+1)*g.T], g.mask, pad)
	if !ok {
		return nil
	}
	return &CriticStats{Mean: s.Mean, P10: s.P10, P50: s.P50, P90: s.P90}
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
