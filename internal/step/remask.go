package step

import (
	"fmt"
	"math"
	"sort"

	"github.com/remask/remask/engine/rng"
)

// DefaultCalibration is the reference's fallback calibration table: 100
// values evenly spaced from 0.01 to 0.99 (docs/sampling.md).
func DefaultCalibration() []float64 {
	t := make([]float64, 100)
	for i := range t {
		t[i] = 0.01 + float64(i)*0.98/99
	}
	return t
}

// Scoring is what the remask scores of one iteration read besides the
// prediction. Flat position p is sample p/T, position p%T.
type Scoring struct {
	Strategy  Strategy
	Seed      uint64
	Iteration int
	T         int
	// R is randomness_strength as given: critic, self and model blend
	// (1-R)·score + R·u when R > 0; calibrated clamps it to [0, 1] (NaN
	// and infinities to 0).
	R float64

	Logits []float32 // Self: the LM logits of the input (N, V)
	V      int
	Critic []float32 // Critic, Calibrated: critic logits (N)
	Table  []float64 // Calibrated: 100 entries
	Class  []float32 // Model: the classifier's logits (N, K)
	K      int
}

// Scores fills score (larger = remasked first) and wrong (the strategy's
// wrongness, NaN for Random) for every position of pred.
func (s *Scoring) Scores(pred []int32, score, wrong []float64) error {
	T, it := s.T, uint32(s.Iteration)
	r := s.R
	noise := func(p int) float64 {
		return float64(rng.Uniform(s.Seed, uint32(p/T), it, uint32(p%T), rng.RemaskNoise))
	}
	blend := func(p int, x float64) float64 {
		if r > 0 {
			return Blend(x, r, noise(p))
		}
		return x
	}
	switch s.Strategy {
	case Critic:
		// The raw logit ranks; r blends unbounded logits with U[0,1).
		for p := range pred {
			l := float64(s.Critic[p])
			wrong[p] = Sigmoid(l)
			score[p] = blend(p, l)
		}
	case Calibrated:
		rc := ClampStrength(r)
		for p := range pred {
			b, t := uint32(p/T), uint32(p%T)
			u1 := float64(rng.Uniform(s.Seed, b, it, t, rng.RemaskNoise))
			u2 := float64(rng.Uniform(s.Seed, b, it, t, rng.RemaskLuck))
			score[p], wrong[p] = CalibratedScore(s.Table, CalibratedBucket(float64(s.Critic[p])), rc, u1, u2)
			if math.IsNaN(float64(s.Critic[p])) {
				score[p] = math.NaN() // as remask.wgsl: damaged weights stay visible
			}
		}
	case Self:
		// Mostly remasks freshly filled tokens.
		V := s.V
		for p, tok := range pred {
			q := softmaxAt(s.Logits[p*V:(p+1)*V], int(tok))
			wrong[p] = 1 - q
			score[p] = blend(p, 1-q)
		}
	case Model:
		K := s.K
		col := ModelColumn(K)
		for p := range pred {
			conf := float64(s.Class[p*K+col])
			wrong[p] = 1 - Sigmoid(conf)
			score[p] = blend(p, -conf)
		}
	case Random:
		for p := range pred {
			score[p] = float64(rng.Uniform(s.Seed, uint32(p/T), it, uint32(p%T), rng.RemaskRandom))
			wrong[p] = math.NaN()
		}
	default:
		return fmt.Errorf("step: unknown remasking strategy %v", s.Strategy)
	}
	return nil
}

// Blend is the randomness_strength blend (1-r)·x + r·u.
func Blend(x, r, u float64) float64 { return (1-r)*x + r*u }

// ClampStrength is randomness_strength as the calibrated strategy uses
// it: NaN and infinities are 0, the rest clamped to [0, 1].
func ClampStrength(r float64) float64 {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		r = 0
	}
	return math.Min(math.Max(r, 0), 1)
}

// CalibratedBucket is the calibration table entry of a critic logit:
// floor(100·sigmoid(logit)) clamped to [0, 99].
func CalibratedBucket(logit float64) int {
	b := int(math.Floor(100 * Sigmoid(logit)))
	return min(max(b, 0), 99)
}

// CalibratedScore is the calibrated strategy at one position: wrongness w =
// max(table[bucket], 1e-6), score -(u2 / max((1-r)·w + r·u1, 1e-6)) with r
// already clamped (ClampStrength), u1 the RemaskNoise and u2 the
// RemaskLuck uniform. The k smallest luck-over-wrongness ratios go.
func CalibratedScore(table []float64, bucket int, r, u1, u2 float64) (score, wrong float64) {
	w := math.Max(table[bucket], 1e-6)
	w2 := math.Max((1-r)*w+r*u1, 1e-6)
	return -(u2 / w2), w
}

// ModelColumn is the classifier column the model strategy reads: the raw
// class-1 logit is the "confidence" (column 0 for a one-class classifier).
func ModelColumn(K int) int {
	if K > 1 {
		return 1
	}
	return 0
}

// Selection says how one remask selects: K positions per row by score
// (ratio mode), or every position whose wrongness exceeds Thr (threshold
// mode).
type Selection struct {
	K         int
	Threshold bool
	Thr       float64
}

// SelectionFor is the selection after an iteration whose schedule value is
// ratio: threshold mode (not for Random, which has no wrongness) selects
// wrongness > 1 - ratio; ratio mode k = floor(T·ratio) per row. run is
// false when ratio mode selects nothing (k <= 0): the remask is skipped.
func SelectionFor(T int, ratio float64, thresholdMode bool, s Strategy) (sel Selection, run bool) {
	sel.Threshold = thresholdMode && s != Random
	sel.K = int(math.Floor(float64(T) * ratio))
	if sel.Threshold {
		sel.Thr = 1 - ratio
		return sel, true
	}
	return sel, sel.K > 0
}

// Select picks, per row, the positions to mask again: candidates are
// positions whose prediction is not mask and that are not protected;
// threshold mode keeps those with wrong > Thr, ratio mode the K with the
// largest score (ties: the lower position) or every candidate when fewer.
// rows[b] lists the row's positions (0..T-1) ascending. minW is the
// smallest wrongness among the selected (math.Min: a NaN among them makes
// it NaN; NaN when nothing is selected); total counts the selected.
func (sel Selection) Select(B, T int, mask int32, pred []int32, protected []bool, score, wrong []float64) (rows [][]int, minW float64, total int) {
	rows = make([][]int, B)
	minW = math.Inf(1)
	for b := 0; b < B; b++ {
		var cand []int
		for t := 0; t < T; t++ {
			p := b*T + t
			if pred[p] == mask || protected[p] {
				continue
			}
			if sel.Threshold && !(wrong[p] > sel.Thr) {
				continue
			}
			cand = append(cand, t)
		}
		if !sel.Threshold {
			sort.SliceStable(cand, func(i, j int) bool { return score[b*T+cand[i]] > score[b*T+cand[j]] })
			if len(cand) > sel.K {
				cand = cand[:sel.K]
			}
			sort.Ints(cand)
		}
		for _, t := range cand {
			minW = math.Min(minW, wrong[b*T+t])
		}
		rows[b] = cand
		total += len(cand)
	}
	if total == 0 || math.IsInf(minW, 1) {
		minW = math.NaN()
	}
	return rows, minW, total
}
