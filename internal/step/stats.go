package step

import (
	"math"
	"sort"
)

// SelfConfidence is the mean of ln(q[token] + 1e-10) over the row's
// positions that do not hold mask, q = softmax(logits) of the final tokens
// (no temperature, full vocabulary). tokens is one row (T), logits its
// logits (T, V). ok is false when every position is masked (the
// reference's -inf).
func SelfConfidence(tokens []int32, logits []float32, V int, mask int32) (c float64, ok bool) {
	var sum float64
	n := 0
	for t, tok := range tokens {
		if tok == mask {
			continue
		}
		sum += math.Log(softmaxAt(logits[t*V:(t+1)*V], int(tok)) + 1e-10)
		n++
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// CriticStats are the mean and the 10/50/90th percentiles of sigmoid(critic)
// over a row's positions that hold neither mask nor pad; N counts them.
type CriticStats struct {
	Mean, P10, P50, P90 float64
	N                   int
}

// CriticRow computes CriticStats of one row (tokens and critic logits, T
// each); pad < 0 means the vocabulary has no pad id. ok is false when no
// position counts. The percentiles interpolate linearly between order
// statistics, as torch.quantile.
func CriticRow(tokens []int32, critic []float32, mask int32, pad int) (s CriticStats, ok bool) {
	var probs []float64
	for t, tok := range tokens {
		if tok == mask || int(tok) == pad {
			continue
		}
		probs = append(probs, Sigmoid(float64(critic[t])))
	}
	if len(probs) == 0 {
		return s, false
	}
	sort.Float64s(probs)
	var sum float64
	for _, x := range probs {
		sum += x
	}
	return CriticStats{Mean: sum / float64(len(probs)), P10: Quantile(probs, 0.1), P50: Quantile(probs, 0.5), P90: Quantile(probs, 0.9), N: len(probs)}, true
}

// Quantile of sorted xs with linear interpolation between closest ranks.
func Quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	return xs[lo] + (pos-float64(lo))*(xs[hi]-xs[lo])
}
