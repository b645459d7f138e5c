package step

import (
	"math"
	"sort"
)

// Wave describes the sampler head's fill (docs/sampling.md): a wave takes
// every masked position with an unmasked left or right neighbour in its row
// and writes them all at once. A row whose masked positions have no
// unmasked neighbour is bootstrapped: its FillCount(n_masked, Ratio)
// positions with the largest raw LM max-logit join the wave (per row; with
// Global, only when no row of the batch has an eligible position, the top
// of the whole batch).
type Wave struct {
	B, T, V int
	Mask    int32
	Ratio   float64 // min_neighbors_ratio
	Global  bool    // the global-bootstrap compat switch
	// Embeddings: the neighbours' ids condition the head (false: zeros,
	// and Plan reports -1 for every neighbour).
	Embeddings bool
	// All lists every masked position at once. With zeros neighbours the
	// order of the waves changes nothing (what is drawn at a position
	// depends on h and the position only), and the device takes this
	// shortcut; the host loop does not use it.
	All bool
}

// Plan returns the next wave of pred: its flat positions ascending, the
// left and right neighbour id of each (-1: none, masked, or zeros mode),
// and the number of masked positions before the wave (0: the fill is
// done). logits are the LM logits (B·T, V) the bootstrap ranks by.
func (w *Wave) Plan(pred []int32, logits []float32) (pos, left, right []int32, masked int) {
	T := w.T
	var rowsWithout []int // rows with masks but no eligible position
	for b := 0; b < w.B; b++ {
		row := pred[b*T : (b+1)*T]
		m, eligible := 0, 0
		for t, tok := range row {
			if tok != w.Mask {
				continue
			}
			m++
			if w.All || (t > 0 && row[t-1] != w.Mask) || (t+1 < T && row[t+1] != w.Mask) {
				eligible++
				pos = append(pos, int32(b*T+t))
			}
		}
		masked += m
		if m > 0 && eligible == 0 {
			rowsWithout = append(rowsWithout, b)
		}
	}
	if masked == 0 {
		return nil, nil, nil, 0
	}
	if w.Global {
		if len(pos) == 0 {
			pos = append(pos, w.Bootstrap(pred, logits, 0, w.B)...)
		}
	} else {
		for _, b := range rowsWithout {
			pos = append(pos, w.Bootstrap(pred, logits, b, b+1)...)
		}
	}
	sort.Slice(pos, func(i, j int) bool { return pos[i] < pos[j] })
	left, right = make([]int32, len(pos)), make([]int32, len(pos))
	for i, p := range pos {
		l, r := int32(-1), int32(-1)
		if w.Embeddings {
			t := int(p) % T
			if t > 0 && pred[p-1] != w.Mask {
				l = pred[p-1]
			}
			if t+1 < T && pred[p+1] != w.Mask {
				r = pred[p+1]
			}
		}
		left[i], right[i] = l, r
	}
	return pos, left, right, masked
}

// FillCount is how many positions a bootstrap seeds among n masked ones:
// max(1, floor(n·ratio)).
func FillCount(n int, ratio float64) int {
	return max(1, int(math.Floor(float64(n)*ratio)))
}

// Bootstrap picks the seeds of a wave among the masked positions of rows
// [b0, b1): FillCount(n_masked, Ratio) positions with the largest raw LM
// max-logit (no temperature, no exclusion), rounded to 1/1024 (ties: lower
// flat index), or every masked position when n_masked <= n_fill. With
// Global (the global-bootstrap compat switch) the max-logits rank by their
// exact values, as the reference does (docs/sampling.md).
func (w *Wave) Bootstrap(pred []int32, logits []float32, b0, b1 int) []int32 {
	var masked []int32
	for p := b0 * w.T; p < b1*w.T; p++ {
		if pred[p] == w.Mask {
			masked = append(masked, int32(p))
		}
	}
	nFill := FillCount(len(masked), w.Ratio)
	if len(masked) <= nFill {
		return masked
	}
	conf := make(map[int32]float32, len(masked))
	for _, p := range masked {
		row := logits[int(p)*w.V : (int(p)+1)*w.V]
		if w.Global {
			conf[p] = MaxLogit(row)
		} else {
			conf[p] = BootstrapConfidence(row)
		}
	}
	sort.SliceStable(masked, func(i, j int) bool { return conf[masked[i]] > conf[masked[j]] })
	return masked[:nFill]
}

// BootstrapConfidence is a masked position's bootstrap rank: its largest
// raw logit rounded to 1/1024 (halves away from zero, Go's math.Round).
// Quantised so that backends whose logits differ by float rounding (CPU vs
// GPU: ~1e-5) still rank near-ties alike: on an all-[MASK] row every
// position's logits are nearly equal, and an unquantised argmax would pick
// a different seed per backend.
func BootstrapConfidence(row []float32) float32 {
	return float32(math.Round(float64(MaxLogit(row))*1024) / 1024)
}

// MaxLogit is the largest value of row (-inf for an empty row; NaNs are
// skipped). The global-bootstrap compat switch ranks by it unrounded.
func MaxLogit(row []float32) float32 {
	m := float32(math.Inf(-1))
	for _, l := range row {
		if l > m {
			m = l
		}
	}
	return m
}
