package sampler

import (
	"context"
	"fmt"
	"math"

	"github.com/remask/remask/internal/step"
)

// remask selects, per row, the positions of pred to mask again before the
// next iteration (sampler-spec 4.6, 4.7). ratio is the schedule value for
// this remask. It returns the selected positions per row (ascending), the
// smallest wrongness among them (NaN when the strategy has none), and stop
// when threshold mode selected nothing in the whole batch (early
// termination). Candidates are positions whose prediction is not the mask id
// and that are not protected; a row never loses more than its candidates.
// The networks run here; the scores and the selection are internal/step's.
func (g *generation) remask(ctx context.Context, it int, pred []int32, ratio float64) (sel [][]int, minW float64, stop bool, err error) {
	o := &g.o
	T := g.T
	how, run := step.SelectionFor(T, ratio, o.ScheduleMode == ScheduleThreshold, g.remasking)
	if !run {
		return nil, math.NaN(), false, nil
	}
	n := len(pred)
	if len(g.scoreBuf) != n {
		g.scoreBuf, g.wrongBuf = make([]float64, n), make([]float64, n)
	}
	sc := step.Scoring{Strategy: g.remasking, Seed: o.Seed, Iteration: it, T: T, R: o.RandomnessStrength}
	switch g.remasking {
	case step.Critic, step.Calibrated:
		if !g.hasCritic { // the critic scores the prediction: a second trunk pass
			h, err := g.lm.Encode(ctx, pred, g.B, T)
			if err != nil {
				return nil, 0, false, err
			}
			if err := g.lm.CriticLogits(ctx, h, g.critic); err != nil {
				return nil, 0, false, err
			}
		}
		sc.Critic = g.critic
		if g.remasking == step.Calibrated {
			sc.Table = g.cfg.CriticCalibration
			if len(sc.Table) == 0 {
				sc.Table = step.DefaultCalibration()
			}
		}
	case step.Self:
		sc.Logits, sc.V = g.logits, g.V
	case step.Model:
		m := g.remaskr
		K := m.Model().Config.NumTokenClasses
		h, err := m.Encode(ctx, pred, g.B, T)
		if err != nil {
			return nil, 0, false, err
		}
		if len(g.classBuf) != n*K {
			g.classBuf = make([]float32, n*K)
		}
		if err := m.Logits(ctx, h, g.classBuf); err != nil {
			return nil, 0, false, err
		}
		sc.Class, sc.K = g.classBuf, K
	case step.Random:
	default:
		return nil, 0, false, fmt.Errorf("sampler: unknown remasking strategy %v", g.remasking)
	}
	if err := sc.Scores(pred, g.scoreBuf, g.wrongBuf); err != nil {
		return nil, 0, false, err
	}
	if g.remasking != step.Random {
		g.wrong = g.wrongBuf
	}
	sel, minW, total := how.Select(g.B, T, g.mask, pred, g.protected, g.scoreBuf, g.wrongBuf)
	if how.Threshold && total == 0 {
		return nil, minW, true, nil
	}
	return sel, minW, false, nil
}
