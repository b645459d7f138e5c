package sampler

import (
	"context"
	"math"
	"sort"

	"github.com/remask/remask/engine"
)

// wavefront fills the masked positions of pred with the sampler head, wave
// by wave (sampler-spec 4.5): a wave takes every masked position with an
// unmasked left or right neighbour in its row, conditions the head on those
// neighbours (or on zeros), and writes the whole wave at once. A row whose
// masked positions have no unmasked neighbour is bootstrapped: its
// max(1, floor(n_masked * min_neighbors_ratio)) positions with the largest
// raw LM logit join the wave (per row by default; a global top-k over the
// batch with the global-bootstrap compat switch). There is one trunk pass per
// iteration (h); waves only re-run the small sampler MLP. Without the
// wave-cap compat switch every mask is filled; with it at most T waves run.
func (g *generation) wavefront(ctx context.Context, it int, h engine.Hidden, pred []int32) error {
	T, V := g.T, g.V
	ratio := g.cfg.Sampler.MinNeighborsRatio
	var pos, left, right []int32
	var out []float32
	drawn := []int32{}
	for waves := 0; ; waves++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if g.o.Compat.WaveCap && waves >= T {
			return nil
		}
		pos = pos[:0]
		totalMasked := 0
		rowsWithout := []int{} // rows with masks but no eligible position
		for b := 0; b < g.B; b++ {
			row := pred[b*T : (b+1)*T]
			masked, eligible := 0, 0
			for t, tok := range row {
				if tok != g.mask {
					continue
				}
				masked++
				if (t > 0 && row[t-1] != g.mask) || (t+1 < T && row[t+1] != g.mask) {
					eligible++
					pos = append(pos, int32(b*T+t))
				}
			}
			totalMasked += masked
			if masked > 0 && eligible == 0 {
				rowsWithout = append(rowsWithout, b)
			}
		}
		if totalMasked == 0 {
			return nil
		}
		if g.o.Compat.GlobalBootstrap {
			if len(pos) == 0 {
				pos = append(pos, g.bootstrap(pred, 0, g.B, ratio)...)
			}
		} else {
			for _, b := range rowsWithout {
				pos = append(pos, g.bootstrap(pred, b, b+1, ratio)...)
			}
		}
		sort.Slice(pos, func(i, j int) bool { return pos[i] < pos[j] })

		left, right = left[:0], right[:0]
		for _, p := range pos {
			l, r := int32(-1), int32(-1)
			if g.neighbors == "embeddings" {
				t := int(p) % T
				if t > 0 && pred[p-1] != g.mask {
					l = pred[p-1]
				}
				if t+1 < T && pred[p+1] != g.mask {
					r = pred[p+1]
				}
			}
			left, right = append(left, l), append(right, r)
		}
		if cap(out) < len(pos)*V {
			out = make([]float32, len(pos)*V)
		}
		out = out[:len(pos)*V]
		if err := g.lm.SamplerLogits(ctx, h, pos, left, right, out); err != nil {
			return err
		}
		drawn = drawn[:0]
		for i, p := range pos {
			tok, err := g.drawAt(g.sampler, it, int(p), out[i*V:(i+1)*V])
			if err != nil {
				return err
			}
			drawn = append(drawn, tok)
		}
		for i, p := range pos {
			pred[p] = drawn[i]
		}
	}
}

// bootstrap picks the seeds of a wave among the masked positions of rows
// [b0, b1): n_fill = max(1, floor(n_masked * ratio)) positions with the
// largest raw LM max-logit (no temperature, no exclusion), rounded to 1/1024
// (ties: lower flat index), or every masked position when n_masked <= n_fill.
func (g *generation) bootstrap(pred []int32, b0, b1 int, ratio float64) []int32 {
	var masked []int32
	for p := b0 * g.T; p < b1*g.T; p++ {
		if pred[p] == g.mask {
			masked = append(masked, int32(p))
		}
	}
	nFill := int(math.Floor(float64(len(masked)) * ratio))
	if nFill < 1 {
		nFill = 1
	}
	if len(masked) <= nFill {
		return masked
	}
	conf := make(map[int32]float32, len(masked))
	for _, p := range masked {
		m := float32(math.Inf(-1))
		for _, l := range g.logits[int(p)*g.V : (int(p)+1)*g.V] {
			if l > m {
				m = l
			}
		}
		// Quantised to 1/1024 so that backends whose logits differ by float
		// rounding (CPU vs GPU: ~1e-5) still rank near-ties alike: on an
		// all-[MASK] row every position's logits are nearly equal, and an
		// unquantised argmax would pick a different seed per backend.
		conf[p] = float32(math.Round(float64(m)*1024) / 1024)
	}
	sort.SliceStable(masked, func(i, j int) bool { return conf[masked[i]] > conf[masked[j]] })
	return masked[:nFill]
}
