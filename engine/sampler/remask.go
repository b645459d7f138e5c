package sampler

import (
	"context"
	"math"
	"sort"

	"github.com/remask/remask/engine/rng"
)

// defaultCalibration is the reference's fallback table: 100 values evenly
// spaced from 0.01 to 0.99 (sampler-spec 2.7).
func defaultCalibration() []float64 {
	t := make([]float64, 100)
	for i := range t {
		t[i] = 0.01 + float64(i)*0.98/99
	}
	return t
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// remask selects, per row, the positions of pred to mask again before the
// next iteration (sampler-spec 4.6, 4.7). ratio is the schedule value for
// this remask. It returns the selected positions per row (ascending), the
// smallest wrongness among them (NaN when the strategy has none), and stop
// when threshold mode selected nothing in the whole batch (early
// termination). Candidates are positions whose prediction is not the mask id
// and that are not protected; a row never loses more than its candidates.
func (g *generation) remask(ctx context.Context, it int, pred []int32, ratio float64) (sel [][]int, minW float64, stop bool, err error) {
	o := &g.o
	T := g.T
	threshold := o.ScheduleMode == ScheduleThreshold && g.strategy != RemaskRandom
	k := int(math.Floor(float64(T) * ratio))
	if !threshold && k <= 0 {
		return nil, math.NaN(), false, nil
	}
	n := len(pred)
	if len(g.scoreBuf) != n {
		g.scoreBuf, g.wrongBuf = make([]float64, n), make([]float64, n)
	}
	score := g.scoreBuf // larger = remasked first
	wrong := g.wrongBuf // the strategy's wrongness, for threshold and display
	r := o.RandomnessStrength
	noise := func(p int) float64 {
		return float64(rng.Uniform(o.Seed, uint32(p/T), uint32(it), uint32(p%T), rng.RemaskNoise))
	}
	blend := func(p int, s float64) float64 {
		if r > 0 {
			return (1-r)*s + r*noise(p)
		}
		return s
	}

	switch g.strategy {
	case RemaskCritic, RemaskCalibrated:
		if !g.hasCritic { // the critic scores the prediction: a second trunk pass
			h, err := g.lm.Encode(ctx, pred, g.B, T)
			if err != nil {
				return nil, 0, false, err
			}
			if err := g.lm.CriticLogits(ctx, h, g.critic); err != nil {
				return nil, 0, false, err
			}
		}
		if g.strategy == RemaskCritic {
			// [SH]/[SEED]: the raw logit ranks; r blends unbounded logits with U[0,1) (Q14).
			for p := range pred {
				l := float64(g.critic[p])
				wrong[p] = sigmoid(l)
				score[p] = blend(p, l)
			}
			break
		}
		// [D7] calibrated: w from the table, luck u2 / w', k smallest.
		table := g.cfg.CriticCalibration
		if len(table) == 0 {
			table = defaultCalibration()
		}
		rc := r
		if math.IsNaN(rc) || math.IsInf(rc, 0) {
			rc = 0
		}
		rc = math.Min(math.Max(rc, 0), 1)
		for p := range pred {
			pr := sigmoid(float64(g.critic[p]))
			bucket := int(math.Floor(100 * pr))
			bucket = min(max(bucket, 0), 99)
			w := math.Max(table[bucket], 1e-6)
			wrong[p] = w
			b, t := uint32(p/T), uint32(p%T)
			u1 := float64(rng.Uniform(o.Seed, b, uint32(it), t, rng.RemaskNoise))
			u2 := float64(rng.Uniform(o.Seed, b, uint32(it), t, rng.RemaskLuck))
			w2 := math.Max((1-rc)*w+rc*u1, 1e-6)
			score[p] = -(u2 / w2)
		}
	case RemaskSelf:
		// u = 1 - softmax(logits of the input)[prediction] (Q15: mostly
		// remasks freshly filled tokens).
		V := g.V
		for p, tok := range pred {
			row := g.logits[p*V : (p+1)*V]
			maxL := math.Inf(-1)
			for _, l := range row {
				maxL = math.Max(maxL, float64(l))
			}
			var z float64
			for _, l := range row {
				z += math.Exp(float64(l) - maxL)
			}
			q := math.Exp(float64(row[tok])-maxL) / z
			wrong[p] = 1 - q
			score[p] = blend(p, 1-q)
		}
	case RemaskModel:
		m := g.remaskr
		K := m.Model().Config.NumTokenClasses
		h, err := m.Encode(ctx, pred, g.B, T)
		if err != nil {
			return nil, 0, false, err
		}
		if len(g.classBuf) != n*K {
			g.classBuf = make([]float32, n*K)
		}
		logits := g.classBuf
		if err := m.Logits(ctx, h, logits); err != nil {
			return nil, 0, false, err
		}
		col := 0
		if K > 1 {
			col = 1 // the raw class-1 logit is the "confidence" (Q13)
		}
		for p := range pred {
			conf := float64(logits[p*K+col])
			wrong[p] = 1 - sigmoid(conf)
			score[p] = blend(p, -conf)
		}
	case RemaskRandom:
		for p := range pred {
			score[p] = float64(rng.Uniform(o.Seed, uint32(p/T), uint32(it), uint32(p%T), rng.RemaskRandom))
			wrong[p] = math.NaN()
		}
	}

	if g.strategy != RemaskRandom {
		g.wrong = wrong
	}
	sel = make([][]int, g.B)
	minW = math.Inf(1)
	total := 0
	thr := 1 - ratio
	for b := 0; b < g.B; b++ {
		var cand []int
		for t := 0; t < T; t++ {
			p := b*T + t
			if pred[p] == g.mask || g.protected[p] {
				continue
			}
			if threshold && !(wrong[p] > thr) {
				continue
			}
			cand = append(cand, t)
		}
		if !threshold {
			// top-k by score, ties to the lower position
			sort.SliceStable(cand, func(i, j int) bool { return score[b*T+cand[i]] > score[b*T+cand[j]] })
			if len(cand) > k {
				cand = cand[:k]
			}
			sort.Ints(cand)
		}
		for _, t := range cand {
			minW = math.Min(minW, wrong[b*T+t])
		}
		sel[b] = cand
		total += len(cand)
	}
	if total == 0 || math.IsInf(minW, 1) {
		minW = math.NaN()
	}
	if threshold && total == 0 {
		return nil, minW, true, nil
	}
	return sel, minW, false, nil
}
